/**
 * The live configuration's rules without services: the schema, how a worker resolves a setting (provider, then
 * global, then its environment; maxJobs held at WORKER_MAX_JOBS), the breaker threshold on a provider's pacing, the
 * audit's list of changes and `sri config set key=value`. The end-to-end behaviour is in
 * test/execution-plane/live-config.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  breakerBlockerKindsFor, breakerThresholdFor, effectiveFeatures, effectiveMaxJobs, effectiveRetry, LiveConfig, parseLiveConfigDocument, type LiveDefaults,
} from '../../src/shared/live-config.ts';
import { LiveConfigWatcher } from '../../src/execution-plane/live-config.ts';
import { changedPaths } from '../../src/control-plane/workers/worker-config.ts';
import { applyAssignment } from '../../src/cli/worker-config.ts';

const env: LiveDefaults = { maxJobs: 4, maxAttempts: 3, backoffBaseMs: 1000, backoffMaxMs: 60_000 };

describe('live configuration rules', () => {
  it('fills what is left out and refuses unknown fields, bad ranges and a base above its cap, naming the field', () => {
    assert.deepEqual(LiveConfig.parse({}), { global: {}, providers: {} });
    const issue = (v: unknown) => { const r = LiveConfig.safeParse(v); assert.ok(!r.success); return r.error.issues[0]!.path.join('.'); };
    assert.equal(issue({ global: { maxJobs: 1001 } }), 'global.maxJobs');
    assert.equal(issue({ global: { flags: {} } }), 'global');
    assert.equal(issue({ global: { features: { blockerWatch: 'no' } } }), 'global.features.blockerWatch');
    assert.equal(issue({ providers: { sri: { features: { screenshots: false } } } }), 'providers.sri.features');
    assert.equal(issue({ providers: { sri: { retry: { backoffMaxMs: 10 } } }, global: { retry: { backoffBaseMs: 500 } } }), 'providers.sri.retry.backoffMaxMs');
  });

  it('holds maxJobs at the environment\'s ceiling and resolves retries provider → global → environment', () => {
    const c = LiveConfig.parse({ global: { maxJobs: 10, retry: { maxAttempts: 5 } }, providers: { sri: { retry: { maxAttempts: 1, backoffBaseMs: 10 } } } });
    assert.equal(effectiveMaxJobs(c, env), 4, 'never above WORKER_MAX_JOBS');
    assert.equal(effectiveMaxJobs(LiveConfig.parse({ global: { maxJobs: 1 } }), env), 1);
    assert.equal(effectiveMaxJobs(LiveConfig.parse({}), env), 4);
    assert.deepEqual(effectiveRetry(c, 'sri', env), { maxAttempts: 1, backoffBaseMs: 10, backoffMaxMs: 60_000 });
    assert.deepEqual(effectiveRetry(c, 'demo', env), { maxAttempts: 5, backoffBaseMs: 1000, backoffMaxMs: 60_000 });
    assert.deepEqual(effectiveRetry(c, 'constructor', env).maxAttempts, 5, 'an inherited property is no provider');
  });

  it('resolves feature flags provider → global → on', () => {
    const all = { blockerWatch: true, failureCapture: true, recordings: true };
    assert.deepEqual(effectiveFeatures(LiveConfig.parse({}), 'sri'), all);
    const c = LiveConfig.parse({ global: { features: { recordings: false, blockerWatch: false } }, providers: { sri: { features: { blockerWatch: true, failureCapture: false } } } });
    assert.deepEqual(effectiveFeatures(c, 'sri'), { blockerWatch: true, failureCapture: false, recordings: false });
    assert.deepEqual(effectiveFeatures(c, 'demo'), { blockerWatch: false, failureCapture: true, recordings: false });
    assert.deepEqual(effectiveFeatures(c, 'constructor'), effectiveFeatures(c, 'demo'), 'an inherited property is no provider');
  });

  it('sets the breaker threshold only on a pacing that has a breaker', () => {
    const c = LiveConfig.parse({ global: { breaker: { failureThreshold: 7 } }, providers: { sri: { breaker: { failureThreshold: 2 } } } });
    assert.equal(breakerThresholdFor(c, 'sri'), 2);
    assert.equal(breakerThresholdFor(c, 'demo'), 7);
    const kinds = LiveConfig.parse({ global: { breaker: { blockerKinds: ['rate-limit', 'maintenance'] } }, providers: { sri: { breaker: { blockerKinds: [] } } } });
    assert.deepEqual(breakerBlockerKindsFor(kinds, 'demo'), ['rate-limit', 'maintenance']);
    assert.deepEqual(breakerBlockerKindsFor(kinds, 'sri'), [], 'a provider\'s empty list wins over the global one');
    assert.deepEqual(breakerBlockerKindsFor(LiveConfig.parse({}), 'sri'), []);
    assert.ok(!LiveConfig.safeParse({ global: { breaker: { blockerKinds: ['teapot'] } } }).success, 'an unknown kind is refused');
    assert.ok(!LiveConfig.safeParse({ global: { breaker: { blockerKinds: ['captcha', 'captcha'] } } }).success, 'a kind twice is refused');
    const watcher = new LiveConfigWatcher({ redis: null as never, subscriber: null as never, logger: null as never, defaults: env });
    // Before any document: the pacing as the catalogue has it.
    const pacing = { breaker: { failureThreshold: 5, coolDownMs: 1000 } };
    assert.equal(watcher.pacingFor('sri', pacing), pacing);
    assert.deepEqual(watcher.maxJobs(), 4);
  });

  it('reads a stored document or says why not, never throwing', () => {
    assert.deepEqual(parseLiveConfigDocument(null), { state: 'absent' });
    assert.equal(parseLiveConfigDocument('{').state, 'invalid');
    const bad = parseLiveConfigDocument(JSON.stringify({ version: 4, config: { global: { maxJobs: 'x' } }, updatedAt: 'a', updatedBy: 'b' }));
    assert.ok(bad.state === 'invalid' && bad.version === 4 && /config\.global\.maxJobs/.test(bad.problem));
    const good = parseLiveConfigDocument(JSON.stringify({ version: 2, config: { global: { maxJobs: 1 } }, updatedAt: 'a', updatedBy: 'b' }));
    assert.ok(good.state === 'valid' && good.document.config.global.maxJobs === 1);
  });

  it('lists the settings a write changed, for the audit', () => {
    assert.deepEqual(changedPaths({ global: { maxJobs: 1 }, providers: {} }, { global: { maxJobs: 2, retry: { maxAttempts: 3 } }, providers: { sri: { retry: { maxAttempts: 1 } } } }),
      ['global.maxJobs', 'global.retry.maxAttempts', 'providers.sri.retry.maxAttempts']);
    assert.deepEqual(changedPaths({ global: {} }, { global: {} }), []);
  });

  it('sri config set key=value: sets dotted paths with JSON values and removes a setting with an empty value', () => {
    const base = { global: { maxJobs: 2 }, providers: { sri: { retry: { maxAttempts: 2 } } } };
    assert.deepEqual(applyAssignment(base, 'global.retry.backoffBaseMs=500'), { global: { maxJobs: 2, retry: { backoffBaseMs: 500 } }, providers: { sri: { retry: { maxAttempts: 2 } } } });
    assert.deepEqual(applyAssignment(base, 'providers.sri.retry.maxAttempts='), { global: { maxJobs: 2 }, providers: {} });
    assert.deepEqual(applyAssignment(base, 'global.maxJobs=null'), { global: {}, providers: { sri: { retry: { maxAttempts: 2 } } } });
    assert.deepEqual(base.global, { maxJobs: 2 }, 'the original is not changed');
    assert.throws(() => applyAssignment(base, 'maxJobs'), /key=value/);
    assert.throws(() => applyAssignment(base, 'global..x=1'), /key=value/);
  });
});

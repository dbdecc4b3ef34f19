import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadWorkerConfig } from '../../src/execution-plane/config.ts';
import { parseJobMessage } from '../../src/execution-plane/job/message.ts';
import { retryDelayMs } from '../../src/execution-plane/job/stages/report.ts';
import { MODULE_HOLDER, rewriteModule } from '../../src/execution-plane/script/module-rewrite.ts';
import { verifyJobScript } from '../../src/execution-plane/script/verified-script.ts';
import { hostMatches, urlAllowed } from '../../src/execution-plane/job/host-guard.ts';
import { EgressPolicy } from '../../src/execution-plane/job/egress-policy.ts';
import { sanitizeFileName } from '../../src/execution-plane/job/helpers.ts';
import { Redactor } from '../../src/execution-plane/job/redactor.ts';
import { resolveChromiumPath } from '../../src/execution-plane/browser.ts';
import { isSriError, type SriError } from '../../src/shared/errors.ts';
import { signScript } from '../../src/shared/signing.ts';
import { TEST_SIGNING_SECRET } from '../support/services.ts';
import { signedJob } from './support/jobs.ts';

const baseEnv = { SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET };

function configError(env: Record<string, string>): SriError {
  try {
    loadWorkerConfig(env);
  } catch (e) {
    assert.ok(isSriError(e));
    assert.equal(e.code, 'CONFIG_INVALID');
    return e;
  }
  assert.fail('loadWorkerConfig accepted the environment');
}

describe('worker configuration', () => {
  it('applies the documented defaults', () => {
    const c = loadWorkerConfig(baseEnv);
    assert.equal(c.pollIntervalMs, 1000);
    assert.equal(c.maxJobs, 2);
    assert.equal(c.playwrightTimeoutMs, 30_000);
    assert.equal(c.executionTimeoutMs, 300_000);
    assert.equal(c.heartbeatIntervalMs, 10_000);
    assert.deepEqual([c.leaseMs, c.maxJobBytes, c.retryBaseMs, c.retryMaxMs, c.maxAttempts, c.recoveryIntervalMs],
      [30_000, 1024 * 1024, 1000, 60_000, 3, 1000]);
    assert.equal(c.chromiumPath, undefined);
    assert.match(c.workerId, new RegExp(`^worker-.+-${process.pid}$`));
    assert.ok(Object.isFrozen(c));
  });

  it('refuses a signing secret shorter than 32 characters, naming the variable', () => {
    assert.match(configError({ SCRIPT_SIGNING_SECRET: 'short' }).message, /SCRIPT_SIGNING_SECRET/);
    assert.match(configError({}).message, /SCRIPT_SIGNING_SECRET/);
  });

  for (const name of ['DATABASE_URL', 'POSTGRES_USER', 'POSTGRES_PASSWORD', 'API_URL', 'API_KEY']) {
    it(`refuses to start when ${name} is set, naming it`, () => {
      const err = configError({ ...baseEnv, [name]: 'x' });
      assert.match(err.message, new RegExp(`\\b${name}\\b`));
      assert.match(err.message, /must not hold database or API settings/);
    });
  }

  it('names a bad number and a heartbeat interval that outlives its key', () => {
    assert.match(configError({ ...baseEnv, WORKER_MAX_JOBS: '0' }).message, /WORKER_MAX_JOBS/);
    assert.match(configError({ ...baseEnv, WORKER_POLL_INTERVAL: 'soon' }).message, /WORKER_POLL_INTERVAL/);
    assert.match(configError({ ...baseEnv, WORKER_HEARTBEAT_INTERVAL_MS: '30000' }).message, /WORKER_HEARTBEAT_INTERVAL_MS/);
  });

  it('prefers CHROMIUM_PATH, then the system binary, then Playwright\'s own', () => {
    assert.equal(resolveChromiumPath('/opt/c', () => true), '/opt/c');
    assert.equal(resolveChromiumPath(undefined, (p) => p === '/usr/bin/chromium'), '/usr/bin/chromium');
    assert.equal(resolveChromiumPath(undefined, () => true), '/usr/lib/chromium/chromium');
    assert.equal(resolveChromiumPath(undefined, () => false), undefined);
  });
});

describe('job message validation', () => {
  const job = signedJob('org-a', 'export default async function run() {}');

  it('accepts a signed job of the queue\'s organisation', () => {
    const r = parseJobMessage(JSON.stringify(job), 'org-a');
    assert.ok(r.ok);
    assert.equal(r.job.jobId, job.jobId);
  });

  it('describes invalid JSON and reports nothing (no id can be trusted)', () => {
    const r = parseJobMessage('{"jobId": "x",', 'org-a');
    assert.ok(!r.ok);
    assert.match(r.reason, /not valid JSON/);
    assert.equal(r.report, undefined);
  });

  it('lists every schema problem and reports to the organisation when jobId and orgId are readable', () => {
    const r = parseJobMessage(JSON.stringify({ ...job, scriptHash: 'nothex', userId: 'a/b', flowId: undefined }), 'org-a');
    assert.ok(!r.ok);
    assert.match(r.reason, /scriptHash/);
    assert.match(r.reason, /userId/);
    assert.match(r.reason, /flowId/);
    assert.deepEqual(r.report, { jobId: job.jobId, orgId: 'org-a', userId: '', providerId: 'demo', attempt: 1 });
  });

  it('requires scriptContent, scriptKey or module', () => {
    const r = parseJobMessage(JSON.stringify({ ...job, scriptContent: undefined }), 'org-a');
    assert.ok(!r.ok);
    assert.match(r.reason, /either scriptContent, scriptKey or module/);
  });

  it('refuses a message whose orgId is not the queue\'s organisation and reports it to no one else', () => {
    const r = parseJobMessage(JSON.stringify(job), 'org-b');
    assert.ok(!r.ok);
    assert.match(r.reason, /queue of organisation "org-b"/);
    assert.equal(r.report, undefined);
  });
});

describe('retry backoff', () => {
  it('draws a full-jitter delay in [0, min(cap, base × 2^(attempt-1))]', () => {
    assert.equal(retryDelayMs(1, 1000, 60_000, () => 0.999), 999);
    assert.equal(retryDelayMs(3, 1000, 60_000, () => 0.5), 2000);
    assert.equal(retryDelayMs(20, 1000, 60_000, () => 0.5), 30_000, 'capped');
    assert.equal(retryDelayMs(2, 1000, 60_000, () => 0), 0);
  });
});

describe('script module rewrite', () => {
  it('turns the one export default into an assignment on the module holder', () => {
    const out = rewriteModule('export default async function run({ page }) {\n  await page.goto("x");\n}\n');
    assert.equal(out, `${MODULE_HOLDER}.default = async function run({ page }) {\n  await page.goto("x");\n}\n`);
  });

  for (const [what, src] of [
    ['a static import', 'import fs from "node:fs";\nexport default async function run() {}'],
    ['a bare import', 'import "node:fs";\nexport default async function run() {}'],
    ['a dynamic import', 'export default async function run() { await import("node:fs"); }'],
    ['import.meta', 'export default async function run() { return import.meta.url; }'],
  ] as const) {
    it(`rejects ${what} with SCRIPT_INVALID`, () => {
      assert.throws(() => rewriteModule(src), (e: unknown) => isSriError(e) && e.code === 'SCRIPT_INVALID' && /import/.test(e.message));
    });
  }

  it('rejects a script without export default, and one with two', () => {
    assert.throws(() => rewriteModule('async function run() {}'), (e: unknown) => isSriError(e) && e.code === 'SCRIPT_INVALID' && /no `export default`/.test(e.message));
    assert.throws(() => rewriteModule('export default 1;\nexport default 2;'), (e: unknown) => isSriError(e) && e.code === 'SCRIPT_INVALID');
  });

  it('does not mistake a selector mentioning import for an import', () => {
    assert.doesNotThrow(() => rewriteModule('export default async function run({ page }) { await page.click("text=import data"); }'));
  });
});

describe('script verification', () => {
  it('verifies before anything compiles: a hash mismatch and a foreign signature are refused', () => {
    const src = 'export default async function run() {}';
    const { scriptHash, signature } = signScript(src, TEST_SIGNING_SECRET);
    assert.throws(() => verifyJobScript(`${src} `, scriptHash, signature, TEST_SIGNING_SECRET), { message: 'Script integrity compromised' });
    const other = signScript(src, 'another-secret-of-at-least-32-characters!!');
    assert.throws(() => verifyJobScript(src, other.scriptHash, other.signature, TEST_SIGNING_SECRET), { message: 'Unauthorized script' });
  });
});

describe('allowed hosts', () => {
  it('matches exact hosts on any port, host:port on that port, and *.domain on subdomains only', () => {
    assert.ok(hostMatches('127.0.0.1', '8080', '127.0.0.1'));
    assert.ok(hostMatches('LOCALHOST', '80', 'localhost'));
    assert.ok(!hostMatches('evil.localhost', '80', 'localhost'));
    assert.ok(hostMatches('127.0.0.1', '9000', '127.0.0.1:9000'));
    assert.ok(!hostMatches('127.0.0.1', '9001', '127.0.0.1:9000'));
    assert.ok(hostMatches('a.sri.gob.ec', '443', '*.sri.gob.ec'));
    assert.ok(hostMatches('x.y.sri.gob.ec', '443', '*.sri.gob.ec'));
    assert.ok(!hostMatches('sri.gob.ec', '443', '*.sri.gob.ec'));
    assert.ok(!hostMatches('evilsri.gob.ec', '443', '*.sri.gob.ec'));
  });

  it('always blocks file: and other local schemes', () => {
    const anyHost = new EgressPolicy(['anything.example', '127.0.0.1']);
    assert.equal(urlAllowed('file:///etc/passwd', anyHost).allowed, false);
    assert.equal(urlAllowed('chrome://version', anyHost).allowed, false);
    assert.equal(urlAllowed('https://anything.example/', anyHost).allowed, true);
    assert.equal(urlAllowed('https://anything.example/', new EgressPolicy(['127.0.0.1'])).allowed, false);
    assert.equal(urlAllowed('data:text/plain,hi', new EgressPolicy(['127.0.0.1'])).allowed, true);
    // No hosts at all (no allowedHosts, no catalogue entry): every host is refused.
    assert.equal(urlAllowed('https://anything.example/', new EgressPolicy([])).allowed, false);
  });
});

describe('evidence hygiene', () => {
  it('sanitises download names to a plain file name', () => {
    assert.equal(sanitizeFileName('Factura 2024/001 (copia).pdf'), '001_copia.pdf');
    assert.equal(sanitizeFileName('../../etc/passwd'), 'passwd');
    assert.equal(sanitizeFileName('..'), 'download');
    assert.equal(sanitizeFileName('execution.log'), 'download-execution.log');
    assert.equal(sanitizeFileName('año fiscal.csv'), 'ano_fiscal.csv');
  });

  it('redacts secrets, also JSON-escaped and URL-encoded, and leaves short values alone', () => {
    const r = new Redactor(['s3cr"et/value', 'en']);
    assert.equal(r.redact('a s3cr"et/value b'), 'a [redacted] b');
    assert.equal(r.redact(JSON.stringify({ v: 's3cr"et/value' })), '{"v":"[redacted]"}');
    assert.equal(r.redact(`q=${encodeURIComponent('s3cr"et/value')}`), 'q=[redacted]');
    assert.equal(r.redact('when'), 'when');
  });
});

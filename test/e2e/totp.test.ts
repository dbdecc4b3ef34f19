/**
 * TOTP second factors from end to end, on real services (PGlite, redis-server, s3rver, Chromium, the demo portal):
 * the API checks a connection's TOTP seed (base32, TOTP_SEED_INVALID otherwise) and seals it with the session; a
 * flow's `fill {selector, totp}` step makes the worker compute the current code outside the script and type it
 * into the demo portal's second-factor page, which accepts it; a wrong code is refused by the page. Neither the seed
 * nor the code reaches execution.log, the result message, the API's answers or the worker's log file.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEMO_TOTP_SEED, startDemoPortal, type DemoPortal } from '../../src/embedded/demo-portal.ts';
import { keys } from '../../src/shared/keys.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { ResultMessage } from '../../src/shared/schemas.ts';
import { totpCode } from '../../src/shared/totp.ts';
import { startWorker, type WorkerHandle } from '../../src/execution-plane/worker.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { tempDir, waitFor } from '../support/services.ts';
import { testWorkerConfig } from '../execution-plane/support/jobs.ts';

const TRANSPORT_KEYS = `t1:${randomBytes(32).toString('base64')}`;

/** Every code the seed gave from `fromMs` to `toMs`, one period of slack on each side. */
function codesBetween(seed: string, fromMs: number, toMs: number): string[] {
  const out = new Set<string>();
  for (let t = fromMs - 30_000; t <= toMs + 30_000; t += 10_000) out.add(totpCode(seed, t));
  return [...out];
}

describe('TOTP seeds end to end: API → sealed session → worker → demo portal second factor', () => {
  let t: TestApi;
  let portal: DemoPortal;
  let worker: WorkerHandle;
  let sub: Redis;
  const logs = tempDir('sri-e2e-totp-');
  const results = new Map<string, ResultMessage>();
  let token = '';
  let orgId = '';
  let userId = '';

  async function http(method: string, path: string, body?: unknown) {
    const r = await fetch(t.api.url + path, {
      method, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), authorization: `Bearer ${token}` },
    });
    const text = await r.text();
    return { status: r.status, text, body: text ? JSON.parse(text) as any : undefined };
  }

  const finished = (jobId: string) => waitFor(async () => {
    const r = await http('GET', `/api/jobs/${jobId}`);
    return ['done', 'failed', 'dead'].includes(r.body?.job?.status) ? r.body.job : undefined;
  }, { timeoutMs: 90_000, what: `job ${jobId} to finish` });

  async function runFlow(version: string, steps: unknown[]) {
    const flow = await http('POST', '/api/flows', { providerId: 'demo', version, name: `TOTP ${version}`, steps });
    assert.equal(flow.status, 201, flow.text);
    assert.equal((await http('POST', `/api/flows/${flow.body.flow.id}/activate`, {})).status, 200);
    const run = await http('POST', '/api/run', { providerId: 'demo' });
    assert.equal(run.status, 202, run.text);
    return run.body.jobId as string;
  }

  before(async () => {
    portal = await startDemoPortal({ port: 0 });
    t = await startTestApi({ TRANSPORT_KEYS });
    sub = createRedis(t.redisUrl);
    sub.on('pmessage', (_p: string, _c: string, m: string) => {
      const r = ResultMessage.parse(JSON.parse(m));
      results.set(r.jobId, r);
    });
    await sub.psubscribe(keys.orgDonePattern);
    const config = testWorkerConfig({ redisUrl: t.redisUrl, s3Endpoint: t.config.s3Endpoint, logDir: logs.path, extra: { TRANSPORT_KEYS } });
    worker = await startWorker(config, { logger: createLogger({ name: 'worker', level: 'info', logDir: logs.path, stdout: false }), orgRefreshMs: 100 });
    const reg = await fetch(`${t.api.url}/api/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `totp-${randomUUID()}@example.com`, password: 'correct-horse-42', name: 'Ana', orgName: 'Acme' }),
    }).then((r) => r.json()) as any;
    token = reg.token;
    orgId = reg.org.id;
    userId = reg.user.id;
  });

  after(async () => {
    await worker?.stop({ graceMs: 5000 });
    sub?.disconnect();
    await t?.stop();
    await portal?.close();
    logs.remove();
  });

  it('refuses a seed that is not base32 with TOTP_SEED_INVALID, naming the seed but never echoing it', async () => {
    for (const bad of ['123456', 'GEZDGNBVGY3TQOJ1GEZDGNBVGY3TQOJ1', 'GEZDGNBVGY3T', `otpauth://totp/Demo?secret=${DEMO_TOTP_SEED}`]) {
      const r = await http('POST', '/api/providers/demo/connect', { cookies: [], totp: { demo: bad } });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.body.error.code, 'TOTP_SEED_INVALID');
      assert.match(r.body.error.message, /TOTP seed "demo" must be the base32 seed the portal showed \(letters A-Z and digits 2-7/);
      assert.deepEqual(r.body.error.details, { name: 'demo' });
      assert.ok(!r.text.includes(bad), `the answer does not echo ${bad}`);
    }
    const badName = await http('POST', '/api/providers/demo/connect', { cookies: [], totp: { 'two words': DEMO_TOTP_SEED } });
    assert.equal(badName.status, 400);
    assert.equal(badName.body.error.code, 'VALIDATION_FAILED');
    assert.equal(await t.redis.exists(keys.session(orgId, userId, 'demo')), 0, 'nothing was stored');
  });

  it('types the current code into the demo portal\'s second factor from a fill {totp} step; seed and code stay out of the log, result and worker log', async () => {
    // As an authenticator app shows it: grouped, lower case. The API normalises it and seals it with the session.
    const shown = DEMO_TOTP_SEED.toLowerCase().replace(/(.{4})/g, '$1 ').trim();
    const connected = await http('POST', '/api/providers/demo/connect', { cookies: [], totp: { demo: shown } });
    assert.equal(connected.status, 200, connected.text);
    assert.ok(!connected.text.includes(DEMO_TOTP_SEED) && !connected.text.includes(shown));
    const stored = (await t.redis.get(keys.session(orgId, userId, 'demo')))!;
    assert.match(stored, /^sri-enc:v1:t1:/);
    assert.ok(!stored.includes(DEMO_TOTP_SEED), 'Redis holds the seed sealed only');

    const startedAt = Date.now();
    const jobId = await runFlow('1.0.0', [
      { type: 'navigate', url: `${portal.url}/2fa` },
      { type: 'fill', selector: '#code', totp: 'demo' },
      { type: 'click', selector: '#verify' },
      { type: 'waitFor', selector: '#totp-ok' },
      { type: 'extract', name: 'outcome', selector: 'main', fields: { heading: 'h1', text: '#totp-ok' } },
    ]);
    const job = await finished(jobId);
    const endedAt = Date.now();
    assert.equal(job.status, 'done', JSON.stringify(job));
    assert.deepEqual(job.result.outcome, [{ heading: 'Second factor accepted', text: 'Your code was accepted.' }]);
    const result = await waitFor(() => results.get(jobId), { timeoutMs: 30_000, what: 'the result message' });
    assert.equal(result.status, 'done');

    const flowScript = (await http('GET', '/api/flows')).text;
    const logKey = `results/${orgId}/${userId}/${jobId}/execution.log`;
    const log = (await t.blobStore.get('sri-results', logKey))!.toString('utf8');
    assert.match(log, /session loaded: 0 cookie\(s\), 0 credential\(s\), 1 TOTP seed\(s\)/);
    assert.match(log, /filled TOTP code of "demo" into #code/);
    await waitFor(() => readFileSync(join(logs.path, 'worker-combined.log'), 'utf8').includes(jobId), { timeoutMs: 30_000, what: 'the worker log line' });
    const workerLog = readFileSync(join(logs.path, 'worker-combined.log'), 'utf8');
    const texts: Record<string, string> = {
      'execution.log': log, 'result message': JSON.stringify(result), 'job answer': JSON.stringify(job), 'worker log': workerLog, 'flows answer': flowScript,
    };
    const forbidden = [DEMO_TOTP_SEED, shown, ...codesBetween(DEMO_TOTP_SEED, startedAt, endedAt)];
    for (const [name, text] of Object.entries(texts)) {
      for (const f of forbidden) assert.ok(!text.includes(f), `${name} holds ${JSON.stringify(f)}`);
    }
  });

  it('the demo portal refuses a wrong code and accepts the current one', async () => {
    const post = (code: string) => fetch(`${portal.url}/2fa`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ code }).toString(),
    });
    // Ten minutes ahead is twenty periods away: outside the page's one-period tolerance.
    const wrong = await post(totpCode(DEMO_TOTP_SEED, Date.now() + 600_000));
    assert.equal(wrong.status, 401);
    assert.match(await wrong.text(), /id="totp-error"/);
    const right = await post(totpCode(DEMO_TOTP_SEED, Date.now()));
    assert.equal(right.status, 200);
    assert.match(await right.text(), /id="totp-ok"/);
  });

  it('fails a job whose flow names a TOTP seed the connection does not hold (SCRIPT_ERROR naming it)', async () => {
    const jobId = await runFlow('1.0.1', [
      { type: 'navigate', url: `${portal.url}/2fa` },
      { type: 'fill', selector: '#code', totp: 'other' },
    ]);
    const job = await finished(jobId);
    assert.equal(job.status, 'failed', JSON.stringify(job));
    assert.equal(job.error?.code, 'SCRIPT_ERROR');
    assert.match(job.error.message, /no TOTP seed "other" in the session/);
  });
});

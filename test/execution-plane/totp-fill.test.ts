/**
 * helpers.fillTotp on a real worker (redis-server, s3rver, Chromium, the sandboxed script process, the demo portal):
 * the session holds a TOTP seed, the worker computes the current code outside the script and types it into the
 * demo portal's second-factor page. A script that reads the typed code back from the page and logs it, puts it in
 * its result and throws it in its error leaks it nowhere: the code joins the job's secrets the moment it is made, so
 * execution.log, the error, parsed data, the result message and the worker's log file hold `[redacted]` instead.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEMO_TOTP_SEED, startDemoPortal, type DemoPortal } from '../../src/embedded/demo-portal.ts';
import { keys } from '../../src/shared/keys.ts';
import type { Redis } from '../../src/shared/redis.ts';
import type { ResultMessage } from '../../src/shared/schemas.ts';
import { totpCode } from '../../src/shared/totp.ts';
import type { WorkerHandle } from '../../src/execution-plane/worker.ts';
import { waitFor } from '../support/services.ts';
import { startServicesHarness, type ServicesHarness } from './support/services-harness.ts';
import { startWorkerOn } from './support/worker-harness.ts';
import { push, setSession, signedJob, testOrg } from './support/jobs.ts';

const SCRIPT = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/2fa');
  await helpers.fillTotp('#code', 'portal');
  const typed = await page.inputValue('#code');
  helpers.log('typed ' + typed);
  await helpers.screenshot();
  await page.click('#verify');
  await page.waitForSelector('#totp-ok');
  helpers.setResult({ typed, accepted: await page.textContent('#totp-ok') });
  throw new Error('done, and the code was ' + typed);
}
`;

describe('helpers.fillTotp on a real worker', () => {
  let h: ServicesHarness<DemoPortal>;
  let portal: DemoPortal;
  let redis: Redis;
  let worker: WorkerHandle;
  let results: Map<string, ResultMessage>;

  before(async () => {
    h = await startServicesHarness({ portal: () => startDemoPortal({ port: 0 }), logPrefix: 'sri-totp-fill-' });
    ({ portal, redis, results } = h);
    ({ worker } = await startWorkerOn(h));
  });

  after(async () => {
    await worker?.stop({ graceMs: 5000 });
    await h?.stop();
  });

  const object = async (uri: string | undefined): Promise<string> => (await h.object(uri)).toString('utf8');


  it('types a code the portal accepts, and the code the script reads back is redacted in the log, error, parsed data, result and worker log', async () => {
    const org = testOrg('totp');
    // A session written by hand (redis-cli SET): plain JSON, the seed with its parameters spelt out.
    await setSession(redis, org, 'user-1', { cookies: [], totp: { portal: { secret: DEMO_TOTP_SEED, digits: 6, period: 30 } }, connectedAt: Date.now() });
    const job = signedJob(org, SCRIPT, { metadata: { base: portal.url } });
    const startedAt = Date.now();
    await push(redis, org, job);
    const r = await waitFor(() => results.get(job.jobId), { timeoutMs: 60_000, what: 'the result' });
    const endedAt = Date.now();

    // The script reached its throw only after the portal accepted the code.
    assert.equal(r.status, 'failed', JSON.stringify(r));
    assert.equal(r.error?.code, 'SCRIPT_ERROR');
    assert.equal(r.error!.message.includes('done, and the code was [redacted]'), true, r.error!.message);
    const log = await object(r.files.log);
    assert.match(log, /filled TOTP code of "portal" into #code/);
    assert.match(log, /typed \[redacted\]/);
    assert.match(log, /screenshot screenshot-0\.png \(\d+ bytes, 1 secret field\(s\) masked\)/);
    const parsed = JSON.parse(await object(r.files.parsedData)) as { typed: string; accepted: string };
    assert.deepEqual(parsed, { typed: '[redacted]', accepted: 'Your code was accepted.' });

    await waitFor(() => readFileSync(join(h.logDir, 'worker-combined.log'), 'utf8').includes(job.jobId), { timeoutMs: 30_000, what: 'the worker log line' });
    const workerLog = readFileSync(join(h.logDir, 'worker-combined.log'), 'utf8');
    const stored = (await redis.get(keys.jobResult(job.jobId))) ?? '';
    const codes = new Set<string>();
    for (let t = startedAt - 30_000; t <= endedAt + 30_000; t += 10_000) codes.add(totpCode(DEMO_TOTP_SEED, t));
    const texts: Record<string, string> = { 'execution.log': log, 'result message': JSON.stringify(r), 'stored result': stored, 'worker log': workerLog };
    for (const [name, text] of Object.entries(texts)) {
      for (const f of [DEMO_TOTP_SEED, ...codes]) assert.ok(!text.includes(f), `${name} holds ${JSON.stringify(f)}`);
    }
  });
});

/**
 * A CAPTCHA met by a job (issue 13, docs/scripts.md "CAPTCHAs"), on a real worker, Chromium and the demo portal's
 * `/captcha?widget=recaptcha` page: the script only navigates and submits; the worker sees the widget after the
 * navigation and gets past it before the script goes on.
 * - With CAPTCHA_SOLVER=2captcha and a local server speaking the 2captcha API: the site key and page go to the
 *   service, its token goes into the form, the portal accepts it, the job is done; the token and key are not logged.
 * - Without a solver: the job hands the page to a person by itself (status waiting_for_user, hand-off source
 *   `captcha`); the person's input (as the API queues it) answers the portal, "Done", and the job is done.
 * - A one-time-code form (the demo portal's /2fa) on a connection without a TOTP seed: handed to a person (source
 *   `otp`), who types the code; done.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEMO_CAPTCHA_SITE_KEY, DEMO_CAPTCHA_TOKEN, DEMO_TOTP_SEED, startDemoPortal, type DemoPortal } from '../../src/embedded/demo-portal.ts';
import { totpCode } from '../../src/shared/totp.ts';
import { HandoffState, LIVE_KEYS_TTL_SECONDS, type InputListEntry } from '../../src/shared/handoff.ts';
import { keys } from '../../src/shared/keys.ts';
import { createRedis } from '../../src/shared/redis.ts';
import { ResultMessage, type JobMessage } from '../../src/shared/schemas.ts';
import { waitFor } from '../support/services.ts';
import { push, setSession, signedJob, testOrg } from './support/jobs.ts';
import { startWorkerHarness, type WorkerHarness } from './support/worker-harness.ts';

const API_KEY = 'local-solver-key-0123456789';

const SCRIPT = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/captcha?widget=recaptcha');
  await page.click('#captcha-submit');
  await page.waitForSelector('#captcha-ok');
  helpers.setResult({ passed: await page.textContent('#captcha-ok') });
}`;

describe('a CAPTCHA on a job\'s page: solved by a 2captcha-compatible service, or handed to a person', () => {
  let portal: DemoPortal;
  let solverServer: Server;
  let solverUrl = '';
  const tasks: Array<Record<string, string>> = [];
  let withSolver: WorkerHarness;
  let withoutSolver: WorkerHarness;

  const body = async (req: IncomingMessage) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  };

  before(async () => {
    portal = await startDemoPortal({ port: 0 });
    let polls = 0;
    solverServer = createServer(async (req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const json = (o: object) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(o));
      if (url.pathname === '/in.php') {
        const task = Object.fromEntries(new URLSearchParams(await body(req)));
        if (task['key'] !== API_KEY) return json({ status: 0, request: 'ERROR_WRONG_USER_KEY' });
        tasks.push(task);
        return json({ status: 1, request: String(tasks.length) });
      }
      if (url.pathname === '/res.php') return json(++polls % 2 === 1 ? { status: 0, request: 'CAPCHA_NOT_READY' } : { status: 1, request: DEMO_CAPTCHA_TOKEN });
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => solverServer.listen(0, '127.0.0.1', resolve));
    solverUrl = `http://127.0.0.1:${(solverServer.address() as AddressInfo).port}`;
    withSolver = await startWorkerHarness({
      CAPTCHA_SOLVER: '2captcha', CAPTCHA_SOLVER_URL: solverUrl, CAPTCHA_SOLVER_KEY: API_KEY, CAPTCHA_SOLVER_POLL_MS: '100', EXECUTION_TIMEOUT: '120000',
    });
    withoutSolver = await startWorkerHarness({ EXECUTION_TIMEOUT: '120000' });
  });

  after(async () => {
    await withSolver?.stop();
    await withoutSolver?.stop();
    solverServer?.close();
    await portal?.close();
  });

  /**
   * Pushes `job` on the worker without a solver, waits for its automatic hand-off, queues the person's `answer(state)`
   * as the API would (then "Done"), and resolves with the hand-off and the job's final result (the hand-off is
   * announced on the organisation's channel too, as waiting_for_user).
   */
  async function handOffAndAnswer(org: string, job: JobMessage, answer: (s: HandoffState) => InputListEntry[]) {
    const { redis } = withoutSolver;
    const sub = createRedis(withoutSolver.redisUrl);
    const results: ResultMessage[] = [];
    sub.on('message', (_ch: string, m: string) => results.push(ResultMessage.parse(JSON.parse(m))));
    try {
      await sub.subscribe(keys.orgDone(org));
      await push(redis, org, job);
      const state = await waitFor(async () => {
        const raw = await redis.get(keys.jobHandoff(job.jobId));
        return raw ? HandoffState.parse(JSON.parse(raw)) : undefined;
      }, { timeoutMs: 90_000, what: 'the job\'s automatic hand-off' });
      // The worker writes the hand-off's state first, then marks the job waiting_for_user and announces it (so the
      // announcement finds the state): wait, bounded, for the status rather than read it in between.
      const status = await waitFor(async () => {
        const s = await redis.get(keys.jobStatus(job.jobId));
        return s === 'waiting_for_user' ? s : undefined;
      }, { timeoutMs: 30_000, what: 'the job\'s status waiting_for_user' }).catch(async () => redis.get(keys.jobStatus(job.jobId)));
      const key = keys.jobLiveInput(job.jobId);
      const events = [...answer(state), { type: 'answer', answer: 'done' } as const];
      await redis.multi().rpush(key, ...events.map((e) => JSON.stringify(e))).expire(key, LIVE_KEYS_TTL_SECONDS).exec();
      const result = await waitFor(() => results.find((m) => m.jobId === job.jobId && m.status !== 'waiting_for_user' && m.status !== 'retrying'), { timeoutMs: 120_000, what: 'the job\'s final result' });
      return { state, status, announced: results.some((m) => m.status === 'waiting_for_user'), result };
    } finally {
      sub.disconnect();
    }
  }

  it('asks the service after the navigation, puts its token in the form, and the portal lets the job through', async () => {
    const org = testOrg('captcha-solver');
    await setSession(withSolver.redis, org, 'user-1', withSolver.session());
    const r = await withSolver.run(org, signedJob(org, SCRIPT, { metadata: { base: portal.url }, timeoutMs: 120_000 }), 120_000);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.deepEqual(JSON.parse((await withSolver.object(r.files.parsedData)).toString()), { passed: 'You are a person.' });
    const task = tasks.at(-1)!;
    assert.equal(task['method'], 'userrecaptcha');
    assert.equal(task['googlekey'], DEMO_CAPTCHA_SITE_KEY);
    assert.equal(task['pageurl'], `${portal.url}/captcha?widget=recaptcha`);
    const log = (await withSolver.object(r.files.log)).toString();
    assert.match(log, /captcha: a recaptcha CAPTCHA is on http:\/\/127\.0\.0\.1:\d+\/captcha/);
    assert.match(log, /captcha: the CAPTCHA solver answered in/);
    assert.ok(!log.includes(DEMO_CAPTCHA_TOKEN) && !log.includes(API_KEY), 'neither the token nor the key is in the log');
  });

  it('without a solver, hands the page to a person by itself; their answer and "Done" let the job finish', async () => {
    const org = testOrg('captcha-person');
    await setSession(withoutSolver.redis, org, 'user-1', withoutSolver.session());
    const job = signedJob(org, SCRIPT, { metadata: { base: portal.url }, timeoutMs: 120_000 });
    // The person clicks into the answer field (45–85 % of the page's height) and types the answer.
    const { state, status, announced, result: r } = await handOffAndAnswer(org, job, ({ viewport }) => [
      { type: 'click', x: viewport.width / 2, y: Math.round(viewport.height * 0.65) },
      { type: 'type', text: 'human' },
    ]);
    assert.equal(state.source, 'captcha');
    assert.match(state.reason, /recaptcha CAPTCHA needs a person/);
    assert.equal(status, 'waiting_for_user');
    assert.ok(announced, 'the hand-off was announced');
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.deepEqual(JSON.parse((await withoutSolver.object(r.files.parsedData)).toString()), { passed: 'You are a person.' });
  });

  it('hands a one-time-code form to a person when the connection holds no TOTP seed; the code they type lets the job finish', async () => {
    const org = testOrg('otp-person');
    await setSession(withoutSolver.redis, org, 'user-1', withoutSolver.session());
    const script = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/2fa');
  await page.waitForSelector('#totp-ok');
  helpers.setResult({ passed: await page.textContent('#totp-ok') });
}`;
    const job = signedJob(org, script, { metadata: { base: portal.url }, timeoutMs: 120_000 });
    // The person: Tab to the code field (the page's first control), the code from their authenticator, Enter.
    const { state, result: r } = await handOffAndAnswer(org, job, () => [
      { type: 'key', key: 'Tab' },
      { type: 'type', text: totpCode(DEMO_TOTP_SEED, Date.now()) },
      { type: 'key', key: 'Enter' },
    ]);
    assert.equal(state.source, 'otp');
    assert.match(state.reason, /one-time code/);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.match(JSON.parse((await withoutSolver.object(r.files.parsedData)).toString()).passed, /./);
  });
});

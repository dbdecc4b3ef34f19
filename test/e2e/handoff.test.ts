/**
 * Hand-off to a person with a live view, end to end on real services (PGlite, redis-server, s3rver, Chromium, the demo
 * portal), one worker with WORKER_MAX_JOBS=2: a flow's `handoff` step makes its job wait (status waiting_for_user, the
 * job.waiting_for_user webhook), its page's screencast reaches the API's live view (SSE), and input sent through the
 * API (a click, typed text, a key) lands in the demo portal's CAPTCHA page; "Done" lets the script go on and the job
 * ends done. "Give up" fails it with HANDOFF_ABANDONED, silence with HANDOFF_TIMEOUT; a click that would navigate off the
 * job's allowed hosts is refused by its egress policy; the job's EXECUTION_TIMEOUT
 * does not run while it waits. Two jobs wait at once on the one worker, each with its own frames and its own answer;
 * another organisation can neither watch nor drive them (404).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startDemoPortal, type DemoPortal } from '../../src/embedded/demo-portal.ts';
import { keys } from '../../src/shared/keys.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { ResultMessage } from '../../src/shared/schemas.ts';
import { SseParser, type SseEvent } from '../../src/shared/sse.ts';
import { startWorker, type WorkerHandle } from '../../src/execution-plane/worker.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { tempDir, waitFor } from '../support/services.ts';
import { testWorkerConfig } from '../execution-plane/support/jobs.ts';

/** EXECUTION_TIMEOUT of the test's worker: a hand-off outlasts it without the job being stopped. */
const EXECUTION_TIMEOUT_MS = 8000;

interface Org { token: string; orgId: string }

/** An open live view: its events so far, and a way to wait for one. */
interface LiveView { events: SseEvent[]; close(): void; next(pred: (e: SseEvent) => boolean, what: string): Promise<SseEvent> }

describe('hand-off to a person: live view, input and answers through the API', () => {
  let t: TestApi;
  let portal: DemoPortal;
  let worker: WorkerHandle;
  let hooks: Server;
  const received: Array<{ event: string; body: any }> = [];
  /** Result messages as workers publish them (the egress report is in them). */
  const results = new Map<string, ResultMessage>();
  let sub: Redis;
  const logs = tempDir('sri-e2e-handoff-');
  let org: Org;
  let other: Org;

  async function http(who: Org, method: string, path: string, body?: unknown) {
    const r = await fetch(t.api.url + path, {
      method, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), authorization: `Bearer ${who.token}` },
    });
    const text = await r.text();
    return { status: r.status, text, body: text ? JSON.parse(text) as any : undefined };
  }

  async function register(name: string): Promise<Org> {
    const reg = await fetch(`${t.api.url}/api/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `handoff-${randomUUID()}@example.com`, password: 'correct-horse-42', name, orgName: `${name} ${randomUUID().slice(0, 6)}` }),
    }).then((r) => r.json()) as any;
    const o = { token: reg.token as string, orgId: reg.org.id as string };
    assert.equal((await http(o, 'POST', '/api/providers/demo/connect', { cookies: [] })).status, 200);
    return o;
  }

  let flowVersion = 0;
  async function activate(who: Org, steps: unknown[]) {
    const flow = await http(who, 'POST', '/api/flows', { providerId: 'demo', version: `1.0.${flowVersion++}`, name: 'Hand-off', steps });
    assert.equal(flow.status, 201, flow.text);
    assert.equal((await http(who, 'POST', `/api/flows/${flow.body.flow.id}/activate`, {})).status, 200);
  }

  async function run(who: Org): Promise<string> {
    const r = await http(who, 'POST', '/api/run', { providerId: 'demo' });
    assert.equal(r.status, 202, r.text);
    return r.body.jobId as string;
  }

  const captchaFlow = (timeoutMs: number) => [
    { type: 'navigate', url: `${portal.url}/captcha` },
    { type: 'handoff', reason: 'Solve the security check', timeoutMs },
    { type: 'waitFor', selector: '#captcha-ok' },
    { type: 'extract', name: 'outcome', selector: 'main', fields: { text: '#captcha-ok' } },
  ];

  const statusOf = async (who: Org, jobId: string) => (await http(who, 'GET', `/api/jobs/${jobId}/status`)).body?.status as string | undefined;
  const waiting = (who: Org, jobId: string) => waitFor(async () => (await statusOf(who, jobId)) === 'waiting_for_user', { timeoutMs: 90_000, what: `job ${jobId} waiting for a person` });
  const finished = (who: Org, jobId: string) => waitFor(async () => {
    const r = await http(who, 'GET', `/api/jobs/${jobId}`);
    return ['done', 'failed', 'dead', 'cancelled'].includes(r.body?.job?.status) ? r.body.job : undefined;
  }, { timeoutMs: 90_000, what: `job ${jobId} to finish` });

  async function openLive(who: Org, jobId: string): Promise<LiveView> {
    const abort = new AbortController();
    const res = await fetch(`${t.api.url}/api/jobs/${jobId}/live`, { headers: { authorization: `Bearer ${who.token}` }, signal: abort.signal });
    assert.equal(res.status, 200, await (res.status === 200 ? Promise.resolve('') : res.text()));
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const events: SseEvent[] = [];
    const parser = new SseParser();
    void (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of res.body!) events.push(...parser.feed(decoder.decode(chunk as Uint8Array, { stream: true })));
      } catch { /* aborted */ }
    })();
    return {
      events,
      close: () => abort.abort(),
      next: (pred, what) => waitFor(() => events.find(pred), { timeoutMs: 60_000, what }),
    };
  }

  before(async () => {
    portal = await startDemoPortal({ port: 0 });
    hooks = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => { body += d.toString('utf8'); });
      req.on('end', () => {
        received.push({ event: String(req.headers['x-sri-event']), body: JSON.parse(body) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', r));
    t = await startTestApi({ WEBHOOK_ALLOW_PRIVATE: 'true' });
    sub = createRedis(t.redisUrl);
    sub.on('pmessage', (_p: string, _c: string, m: string) => {
      const r = ResultMessage.safeParse(JSON.parse(m));
      // Final results only: a hand-off's announcement, or a retried attempt's blocker (`retrying`), is not one.
      if (r.success && r.data.status !== 'waiting_for_user' && r.data.status !== 'retrying') results.set(r.data.jobId, r.data);
    });
    await sub.psubscribe(keys.orgDonePattern);
    const config = testWorkerConfig({ redisUrl: t.redisUrl, s3Endpoint: t.config.s3Endpoint, logDir: logs.path, extra: {
      // A 5 s lease renewed every ~1.7 s: a wait of several leases shows that a waiting job keeps its lease.
      WORKER_MAX_JOBS: '2', EXECUTION_TIMEOUT: String(EXECUTION_TIMEOUT_MS), WORKER_LEASE_MS: '5000',
    } });
    worker = await startWorker(config, { logger: createLogger({ name: 'worker', level: 'info', logDir: logs.path, stdout: false }), orgRefreshMs: 100 });
    org = await register('Ana');
    other = await register('Eve');
    const hook = await http(org, 'POST', '/api/webhooks', { url: `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hook`, events: ['job.waiting_for_user'] });
    assert.equal(hook.status, 201, hook.text);
  });

  after(async () => {
    await worker?.stop({ graceMs: 5000 });
    sub?.disconnect();
    await t?.stop();
    await portal?.close();
    hooks?.close();
    logs.remove();
  });

  it('streams the waiting page, replays a click, text and Enter sent through the API into it, and "Done" lets the job finish done', async () => {
    await activate(org, captchaFlow(120_000));
    const jobId = await run(org);
    await waiting(org, jobId);
    const handoff = await http(org, 'GET', `/api/jobs/${jobId}/handoff`);
    assert.equal(handoff.status, 200, handoff.text);
    assert.equal(handoff.body.handoff.reason, 'Solve the security check');
    assert.deepEqual(handoff.body.handoff.viewport, { width: 1280, height: 720 });
    assert.ok(handoff.body.handoff.expiresAt > Date.now());

    const hook = await waitFor(() => received.find((r) => r.body?.result?.jobId === jobId), { what: 'the job.waiting_for_user webhook' });
    assert.equal(hook.event, 'job.waiting_for_user');
    assert.equal(hook.body.result.status, 'waiting_for_user');
    assert.equal(hook.body.result.handoff.reason, 'Solve the security check');

    const live = await openLive(org, jobId);
    try {
      assert.equal((await live.next((e) => e.event === 'handoff', 'the handoff event')).event, 'handoff');
      const first = JSON.parse((await live.next((e) => e.event === 'frame', 'a first frame')).data);
      assert.ok(Buffer.from(first.data, 'base64').subarray(0, 2).equals(Buffer.from([0xff, 0xd8])), 'the frame is a JPEG');
      assert.equal(first.viewportWidth, 1280);
      const framesBefore = live.events.filter((e) => e.event === 'frame').length;

      // The answer field fills 45-85 % of the viewport's height (demo portal /captcha).
      for (const input of [{ type: 'click', x: 640, y: 0.65 * 720 }, { type: 'type', text: 'human' }, { type: 'key', key: 'Enter' }]) {
        const r = await http(org, 'POST', `/api/jobs/${jobId}/live/input`, input);
        assert.equal(r.status, 202, r.text);
      }
      // The page changed (the field, then the answer page): new frames came.
      await live.next(() => live.events.filter((e) => e.event === 'frame').length > framesBefore, 'a frame after the input');
      const bad = await http(org, 'POST', `/api/jobs/${jobId}/live/input`, { type: 'key', key: 'Enter; rm -rf' });
      assert.equal(bad.status, 400, bad.text);
      const done = await http(org, 'POST', `/api/jobs/${jobId}/handoff`, { answer: 'done' });
      assert.equal(done.status, 202, done.text);
      await live.next((e) => e.event === 'end', 'the end of the live view');
    } finally {
      live.close();
    }
    const job = await finished(org, jobId);
    assert.equal(job.status, 'done', JSON.stringify(job));
    assert.deepEqual(job.result.outcome, [{ text: 'You are a person.' }]);
    const log = (await t.blobStore.get('sri-results', `results/${org.orgId}/${job.userId}/${jobId}/execution.log`))!.toString('utf8');
    assert.match(log, /waiting for a person \(script\): Solve the security check/);
    assert.match(log, /hand-off input: click at \(640, 468\)/);
    assert.match(log, /hand-off input: typed 5 character\(s\)/);
    assert.ok(!log.includes('human'), 'what the person typed is not logged');
    // Answered: no more input is taken.
    assert.equal((await http(org, 'POST', `/api/jobs/${jobId}/live/input`, { type: 'type', text: 'x' })).body.error.code, 'HANDOFF_NOT_WAITING');
  });

  it('follows a window the page opens into the live view, and announces a second hand-off of the same attempt with its own webhook', async () => {
    await activate(org, [
      { type: 'navigate', url: `${portal.url}/captcha-popup` },
      { type: 'handoff', reason: 'Open the check window and pass it', timeoutMs: 120_000 },
      { type: 'waitFor', selector: '#popup-ok' },
      { type: 'handoff', reason: 'Confirm you are done', timeoutMs: 120_000 },
      { type: 'extract', name: 'outcome', selector: 'body', fields: { text: '#popup-ok' } },
    ]);
    const jobId = await run(org);
    await waiting(org, jobId);
    const logHas = (text: string) => waitFor(async () => {
      const log = await t.redis.xrange(keys.jobLogs(jobId), '-', '+');
      return log.some(([, fields]) => fields.join(' ').includes(text));
    }, { timeoutMs: 60_000, what: `the job's log to say "${text}"` });
    const send = async (input: unknown) => assert.equal((await http(org, 'POST', `/api/jobs/${jobId}/live/input`, input)).status, 202);
    // The button fills the top 40 % of the page: it opens the check in a popup, which the live view then shows.
    await send({ type: 'click', x: 640, y: 0.2 * 720 });
    await logHas('a page opened a new window; the live view shows it');
    const live = await openLive(org, jobId);
    try {
      await live.next((e) => e.event === 'frame', 'a frame of the popup');
    } finally {
      live.close();
    }
    // Input goes to the popup: its answer field (45-85 % of the height), "human", Enter.
    await send({ type: 'click', x: 640, y: 0.65 * 720 });
    await send({ type: 'type', text: 'human' });
    await send({ type: 'key', key: 'Enter' });
    // The page sees the popup passed and closes it: the live view is back on the job's page.
    await logHas('the live view shows the window before it again');
    assert.equal((await http(org, 'POST', `/api/jobs/${jobId}/handoff`, { answer: 'done' })).status, 202);

    // The second hand-off of this attempt is announced again, with its own delivery.
    await logHas('waiting for a person (script): Confirm you are done');
    await waiting(org, jobId);
    const hooks = await waitFor(() => {
      const mine = received.filter((r) => r.body?.result?.jobId === jobId);
      return mine.length >= 2 ? mine : undefined;
    }, { timeoutMs: 60_000, what: 'two job.waiting_for_user webhooks' });
    assert.deepEqual(hooks.map((h) => h.body.result.handoff.reason), ['Open the check window and pass it', 'Confirm you are done']);
    assert.ok(hooks.every((h) => h.event === 'job.waiting_for_user' && h.body.result.attempt === 1));
    assert.equal((await http(org, 'POST', `/api/jobs/${jobId}/handoff`, { answer: 'done' })).status, 202);
    const job = await finished(org, jobId);
    assert.equal(job.status, 'done', JSON.stringify(job));
    assert.deepEqual(job.result.outcome, [{ text: 'The check in the window was passed.' }]);
  });

  it('fails the job with HANDOFF_ABANDONED when the person gives up', async () => {
    await activate(org, captchaFlow(120_000));
    const jobId = await run(org);
    await waiting(org, jobId);
    assert.equal((await http(org, 'POST', `/api/jobs/${jobId}/handoff`, { answer: 'giveUp' })).status, 202);
    const job = await finished(org, jobId);
    assert.equal(job.status, 'failed', JSON.stringify(job));
    assert.equal(job.error.code, 'HANDOFF_ABANDONED');
  });

  it('refuses a navigation off the job\'s allowed hosts that the person\'s click starts, as it refuses the script\'s', async () => {
    await activate(org, captchaFlow(120_000));
    const jobId = await run(org);
    await waiting(org, jobId);
    // The link to another site fills 88-98 % of the viewport's height (demo portal /captcha).
    assert.equal((await http(org, 'POST', `/api/jobs/${jobId}/live/input`, { type: 'click', x: 640, y: 0.93 * 720 })).status, 202);
    await waitFor(async () => {
      const log = await t.redis.xrange(keys.jobLogs(jobId), '-', '+');
      return log.some(([, fields]) => fields.join(' ').includes('hand-off input: click at (640, 670)'));
    }, { what: 'the click replayed' });
    assert.equal((await http(org, 'POST', `/api/jobs/${jobId}/handoff`, { answer: 'giveUp' })).status, 202);
    const job = await finished(org, jobId);
    assert.equal(job.error?.code, 'HANDOFF_ABANDONED');
    const result = await waitFor(() => results.get(jobId), { what: 'the result message' });
    assert.ok(result.egress?.blocked.some((b) => b.host.startsWith('captcha-help.example.com')), `the navigation was refused: ${JSON.stringify(result.egress)}`);
  });

  it('fails the job with HANDOFF_TIMEOUT when nobody answers in time', async () => {
    await activate(org, captchaFlow(2000));
    const jobId = await run(org);
    const job = await finished(org, jobId);
    assert.equal(job.status, 'failed', JSON.stringify(job));
    assert.equal(job.error.code, 'HANDOFF_TIMEOUT');
  });

  it('does not count the wait against EXECUTION_TIMEOUT: a job waiting longer than it still finishes done', async () => {
    await activate(org, captchaFlow(120_000));
    const jobId = await run(org);
    await waiting(org, jobId);
    const since = Date.now();
    // Still waiting, not stopped, once the job's whole EXECUTION_TIMEOUT has passed during the wait.
    await waitFor(async () => Date.now() - since > EXECUTION_TIMEOUT_MS + 1000 && (await statusOf(org, jobId)) === 'waiting_for_user',
      { timeoutMs: 60_000, what: 'the wait to outlast EXECUTION_TIMEOUT' });
    for (const input of [{ type: 'click', x: 640, y: 468 }, { type: 'type', text: 'human' }, { type: 'key', key: 'Enter' }]) {
      assert.equal((await http(org, 'POST', `/api/jobs/${jobId}/live/input`, input)).status, 202);
    }
    assert.equal((await http(org, 'POST', `/api/jobs/${jobId}/handoff`, { answer: 'done' })).status, 202);
    const job = await finished(org, jobId);
    assert.equal(job.status, 'done', JSON.stringify(job));
    // Its lease was renewed all along: never recovered as a dead worker's job, so still its first attempt.
    assert.equal(job.attempt, 1);
  });

  it('cancels a waiting job like a running one', async () => {
    await activate(org, captchaFlow(120_000));
    const jobId = await run(org);
    await waiting(org, jobId);
    const cancel = await http(org, 'POST', `/api/jobs/${jobId}/cancel`);
    assert.equal(cancel.status, 202, cancel.text);
    const job = await finished(org, jobId);
    assert.equal(job.status, 'cancelled', JSON.stringify(job));
    assert.equal((await http(org, 'GET', `/api/jobs/${jobId}/handoff`)).body.error.code, 'HANDOFF_NOT_WAITING');
  });

  it('lets two jobs wait at once on one worker, each with its own live view and answer; another organisation gets 404', async () => {
    // Two portal accounts (one run at a time per account): this organisation's and a second one's.
    const second = await register('Bea');
    await activate(org, captchaFlow(120_000));
    await activate(second, captchaFlow(120_000));
    const [a, b] = [await run(org), await run(second)];
    await waiting(org, a);
    await waiting(second, b);
    const [liveA, liveB] = [await openLive(org, a), await openLive(second, b)];
    try {
      const frameA = await liveA.next((e) => e.event === 'frame', 'a frame of job A');
      const frameB = await liveB.next((e) => e.event === 'frame', 'a frame of job B');
      assert.notEqual(frameA.id, '');
      assert.notEqual(frameB.id, '');

      // Another organisation: nothing of either job.
      for (const path of [`/api/jobs/${a}/live`, `/api/jobs/${a}/handoff`]) {
        const r = await http(other, 'GET', path);
        assert.equal(r.status, 404, `${path}: ${r.text}`);
        assert.equal(r.body.error.code, 'NOT_FOUND');
      }
      assert.equal((await http(other, 'POST', `/api/jobs/${a}/live/input`, { type: 'type', text: 'x' })).status, 404);
      assert.equal((await http(other, 'POST', `/api/jobs/${b}/handoff`, { answer: 'giveUp' })).status, 404);

      // A is solved and answered; B stays waiting with its own view until it is given up.
      for (const input of [{ type: 'click', x: 640, y: 468 }, { type: 'type', text: 'human' }, { type: 'key', key: 'Enter' }]) {
        assert.equal((await http(org, 'POST', `/api/jobs/${a}/live/input`, input)).status, 202);
      }
      assert.equal((await http(org, 'POST', `/api/jobs/${a}/handoff`, { answer: 'done' })).status, 202);
      assert.equal((await finished(org, a)).status, 'done');
      await liveA.next((e) => e.event === 'end', 'the end of A\'s live view');
      assert.equal(await statusOf(second, b), 'waiting_for_user', 'B still waits');
      assert.ok(!liveB.events.some((e) => e.event === 'end'), 'B\'s view goes on');
      assert.equal((await http(org, 'POST', `/api/jobs/${b}/handoff`, { answer: 'giveUp' })).status, 404, 'A\'s organisation cannot answer B');
      assert.equal((await http(second, 'POST', `/api/jobs/${b}/handoff`, { answer: 'giveUp' })).status, 202);
      const jobB = await finished(second, b);
      assert.equal(jobB.error?.code, 'HANDOFF_ABANDONED');
    } finally {
      liveA.close();
      liveB.close();
    }
  });
});

/**
 * URL patterns a script waits on (issue 10: a flow cannot freeze a worker). `waitForURL` and `page.frame({ url })`
 * take globs, RegExps and predicates that Playwright would run on the calling process's event loop; a pattern that
 * backtracks for minutes there stalled every job of the worker, its heartbeats, lease renewals and probes. These
 * tests run hostile patterns on a worker *process* (so this test process stays free to probe it while the job
 * runs) and check the worker keeps answering; then the same methods still mean what Playwright means; then the host
 * side against a hostile child that sends the patterns itself.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { keys } from '../../src/shared/keys.ts';
import { ResultMessage } from '../../src/shared/schemas.ts';
import { parseS3Uri } from '../../src/shared/s3.ts';
import { compileSteps } from '../../src/control-plane/flows/compile.ts';
import { chromiumArgs, resolveChromiumPath } from '../../src/execution-plane/browser.ts';
import type { ScriptHelpers } from '../../src/execution-plane/job/helpers.ts';
import { pageRegExp, SandboxHost } from '../../src/execution-plane/script/sandbox/host.ts';
import type { FromChild } from '../../src/execution-plane/script/sandbox/protocol.ts';
import { TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import { startServicesHarness, type ServicesHarness } from './support/services-harness.ts';
import { NORMAL_SCRIPT, push, setSession, signedJob, testOrg } from './support/jobs.ts';

/**
 * Longest a probe of a healthy worker may take here: generous, since the machine is a shared 2-core one whose other
 * core may be busy with a whole test suite while the hostile child burns this one (2 s was met only on a quiet
 * machine). A pattern run on the worker's event loop would block it for minutes, far beyond it.
 */
const PROBE_BOUND_MS = 5000;
/** A run of `a`s on which the hostile patterns backtrack for far longer than any bound of this file. */
const RUN = 'a'.repeat(56);

interface Watch { probes: number; slowestProbeMs: number; failedProbes: string[]; oldestHeartbeatMs: number; leaseLapsedMs: number }

describe('URL patterns never run on the worker\'s event loop', () => {
  // The services harness (redis-server, s3rver, the test portal); the worker is a process of its own, so that this
  // test process stays free to probe it while a hostile pattern runs.
  let s: ServicesHarness;
  let child: ChildProcess | undefined;
  let output = '';
  let healthz = '';
  const workerId = `patterns-${randomUUID().slice(0, 8)}`;

  before(async () => {
    s = await startServicesHarness({ logPrefix: 'sri-url-patterns-' });
    child = spawn(process.execPath, ['--import', 'tsx', 'src/execution-plane/main.ts'], {
      env: {
        PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', NODE_NO_WARNINGS: '1',
        REDIS_URL: s.redisUrl, S3_ENDPOINT: s.s3Endpoint, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET,
        WORKER_ID: workerId, WORKER_POLL_INTERVAL: '50', WORKER_MAX_JOBS: '2', WORKER_HTTP_PORT: '0', LOG_DIR: s.logDir, LOG_LEVEL: 'info',
        // Frequent heartbeats and renewals, so that a stall of a couple of seconds shows in both.
        WORKER_HEARTBEAT_INTERVAL_MS: '250', WORKER_LEASE_MS: '3000',
        // The hostile scripts spin until their own CPU limit stops them.
        WORKER_SCRIPT_CPU_SECONDS: '3', EXECUTION_TIMEOUT: '60000', PLAYWRIGHT_TIMEOUT: '10000', WORKER_MAX_ATTEMPTS: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-20_000); });
    child.stderr!.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-20_000); });
    const url = await waitFor(() => s.redis.hget(keys.workerInfo(workerId), 'httpUrl'), { timeoutMs: 60_000, what: 'the worker\'s HTTP URL in its registry entry' })
      .catch((e: Error) => { throw new Error(`${e.message}; worker output: ${output.slice(-1000)}`); });
    healthz = `${url}/healthz`;
  });

  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    await s?.stop();
  });

  const result = async (jobId: string) => {
    const raw = await s.redis.get(keys.jobResult(jobId));
    return raw ? ResultMessage.parse(JSON.parse(raw)) : undefined;
  };

  /**
   * Runs `script` as a signed job and, until its result is in, probes /healthz and reads heartbeat and lease. Stops
   * watching at the first probe that fails (the worker is stalled: no need to wait for the job), so `r` may be
   * undefined then.
   */
  async function runWatched(script: string): Promise<{ r: ResultMessage | undefined; watch: Watch }> {
    const org = testOrg('patterns');
    await setSession(s.redis, org, 'user-1', { cookies: [{ name: 'sid', value: s.portal.sessionId, url: s.portal.url }], connectedAt: Date.now() });
    const job = signedJob(org, `export default async function run({ page, payload, helpers }) {\n${script}\n}`, {
      metadata: { base: s.portal.url, run: RUN }, allowedHosts: [`127.0.0.1:${s.portal.port}`],
    });
    const watch: Watch = { probes: 0, slowestProbeMs: 0, failedProbes: [], oldestHeartbeatMs: 0, leaseLapsedMs: -Infinity };
    await push(s.redis, org, job);
    const deadline = Date.now() + 90_000;
    let r: ResultMessage | undefined;
    while (!(r = await result(job.jobId)) && !watch.failedProbes.length) {
      assert.ok(Date.now() < deadline, `no result in 90 s; output: ${output.slice(-1000)}`);
      const t0 = performance.now();
      try {
        const res = await fetch(healthz, { signal: AbortSignal.timeout(PROBE_BOUND_MS) });
        if (res.status !== 200) watch.failedProbes.push(`${res.status} ${await res.text()}`);
        else await res.arrayBuffer();
      } catch (e) {
        watch.failedProbes.push(`no answer within ${PROBE_BOUND_MS} ms (${(e as Error).name})`);
      }
      watch.slowestProbeMs = Math.max(watch.slowestProbeMs, performance.now() - t0);
      watch.probes++;
      const beat = Number(await s.redis.get(keys.workerHeartbeat(workerId)));
      if (beat) watch.oldestHeartbeatMs = Math.max(watch.oldestHeartbeatMs, Date.now() - beat);
      // One job at a time runs here: the leases' sorted set holds only its deadline (epoch ms).
      const leases = await s.redis.zrange(keys.queueLeases, '0', '-1', 'WITHSCORES');
      for (let i = 1; i < leases.length; i += 2) watch.leaseLapsedMs = Math.max(watch.leaseLapsedMs, Date.now() - Number(leases[i]));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return { r, watch };
  }

  function assertWorkerKeptAnswering(watch: Watch): void {
    const w = JSON.stringify(watch);
    assert.deepEqual(watch.failedProbes, [], `every /healthz probe answered 200 within ${PROBE_BOUND_MS} ms: ${w}`);
    assert.ok(watch.probes >= 5, `the job ran long enough to be probed: ${w}`);
    assert.ok(watch.oldestHeartbeatMs < 3000, `heartbeats (every 250 ms) kept coming: ${w}`);
    assert.ok(Number.isFinite(watch.leaseLapsedMs) && watch.leaseLapsedMs <= 0, `the job's lease (3 s, renewed every second) was seen and never lapsed: ${w}`);
  }

  async function normalJobSucceeds(): Promise<void> {
    const org = testOrg('after');
    await setSession(s.redis, org, 'user-1', { cookies: [{ name: 'sid', value: s.portal.sessionId, url: s.portal.url }], connectedAt: Date.now() });
    const job = signedJob(org, NORMAL_SCRIPT, { metadata: { base: s.portal.url }, allowedHosts: [`127.0.0.1:${s.portal.port}`] });
    await push(s.redis, org, job);
    const r = await waitFor(() => result(job.jobId), { timeoutMs: 30_000, what: 'the normal job after the attack' });
    assert.equal(r.status, 'done', JSON.stringify(r.error));
  }

  it('a waitForURL glob that backtracks for minutes (…/**a**a**a**a**a**a**a**b) burns the script\'s CPU limit, while the worker answers /healthz within 5 s, heartbeats and renews its lease', async () => {
    const { r, watch } = await runWatched(`
      await page.goto(payload.base + '/' + payload.run);
      await page.waitForURL(payload.base + '/**a**a**a**a**a**a**a**b', { timeout: 60000 });`);
    assertWorkerKeptAnswering(watch);
    assert.equal(r?.status, 'failed', JSON.stringify(r));
    assert.equal(r.error?.code, 'SCRIPT_CPU_LIMIT', `the pattern ran in the script's own process, up to its CPU limit: ${JSON.stringify(r.error)}`);
    await normalJobSucceeds();
  });

  it('a catastrophic RegExp ((a+)+$) given to waitForURL or page.frame({ url }) runs in the script\'s process, not the worker\'s', async () => {
    for (const call of ['await page.waitForURL(/(a+)+$/, { timeout: 60000 });', 'helpers.setResult({ frame: await page.frame({ url: /(a+)+$/ }) });']) {
      const { r, watch } = await runWatched(`
        await page.goto(payload.base + '/' + payload.run + '!');
        ${call}`);
      assertWorkerKeptAnswering(watch);
      assert.equal(r?.status, 'failed', `${call}: ${JSON.stringify(r)}`);
      assert.equal(r.error?.code, 'SCRIPT_CPU_LIMIT', `${call}: ${JSON.stringify(r.error)}`);
    }
    await normalJobSucceeds();
  });

  it('keeps Playwright\'s meaning of waitForURL and page.frame({ url }): exact string, glob, RegExp, predicate, later and same-document navigations, timeout', async () => {
    const { r } = await runWatched(`
      const out = {};
      await page.goto(payload.base + '/login');
      await page.waitForURL(payload.base + '/login'); out.exact = true;
      await page.waitForURL('**/log{in,out}'); out.glob = true;
      await page.waitForURL(/\\/login$/); out.regexp = true;
      await page.waitForURL((url) => url.pathname === '/login'); out.predicate = true;
      await Promise.all([page.waitForURL('**/invoices'), page.evaluate(() => { setTimeout(() => { location.href = '/invoices'; }, 200); })]);
      out.later = page.url().endsWith('/invoices') && await page.locator('#invoices tbody tr').count();
      await page.evaluate(() => history.pushState({}, '', '/pushed'));
      await (await page.mainFrame()).waitForURL('**/pushed'); out.sameDocument = true;
      try { await page.waitForURL('**/never', { timeout: 300 }); } catch (e) { out.timeout = e.name + ': ' + e.message; }
      try { await page.waitForURL('{a,{b}}'); } catch (e) { out.badGlob = e.message; }
      out.frameByUrl = (await page.frame({ url: /\\/pushed$/ })) !== null;
      out.noFrame = await page.frame({ url: '**/nothing' });
      helpers.setResult(out);`);
    assert.equal(r?.status, 'done', JSON.stringify(r));
    const loc = parseS3Uri(r.files.parsedData ?? '');
    assert.ok(loc);
    assert.deepEqual(JSON.parse((await s.store.get(loc.bucket, loc.key))!.toString()), {
      exact: true, glob: true, regexp: true, predicate: true, later: 2, sameDocument: true,
      timeout: 'TimeoutError: page.waitForURL: Timeout 300ms exceeded.',
      badGlob: 'Invalid glob pattern "{a,{b}}": nested \'{\' is not supported', frameByUrl: true, noFrame: null,
    });
  });

  it('runs a compiled waitFor {url} and {urlPrefix} (a literal predicate, no pattern) on the sandbox', async () => {
    const { script } = compileSteps([
      { type: 'navigate', url: `${s.portal.url}/invoices` },
      { type: 'waitFor', url: `${s.portal.url}/invoices` },
      { type: 'waitFor', urlPrefix: `${s.portal.url}/inv` },
    ], { id: 'demo', allowedHosts: [`127.0.0.1:${s.portal.port}`] });
    const org = testOrg('compiled');
    await setSession(s.redis, org, 'user-1', { cookies: [{ name: 'sid', value: s.portal.sessionId, url: s.portal.url }], connectedAt: Date.now() });
    const job = signedJob(org, script, { allowedHosts: [`127.0.0.1:${s.portal.port}`] });
    await push(s.redis, org, job);
    const r = await waitFor(() => result(job.jobId), { timeoutMs: 30_000, what: 'the compiled flow\'s result' });
    assert.equal(r.status, 'done', JSON.stringify(r.error));
  });
});

describe('the sandbox host against a hostile child that sends URL patterns itself', () => {
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  before(async () => {
    browser = await chromium.launch({ executablePath: resolveChromiumPath(undefined), args: chromiumArgs(), headless: true });
    context = await browser.newContext();
    page = await context.newPage();
    await page.goto(`data:text/html,<title>${RUN}!</title>`);
  });
  after(async () => { await browser?.close(); });

  /** A host for `page` whose replies are collected: `call` sends one raw message, as a child could, and awaits its answer. */
  function hostile() {
    const replies = new Map<number, { ok: boolean; v?: unknown; e?: { name: string; message: string } }>();
    const stops: string[] = [];
    const host = new SandboxHost(page, context, { beforeAction: () => Promise.resolve() } as unknown as ScriptHelpers, { maxCalls: 100, maxPending: 16, timeoutMs: 2000 },
      () => {}, (line) => { const m = JSON.parse(line) as { id: number; ok: boolean; v?: unknown; e?: { name: string; message: string } }; replies.set(m.id, m); },
      (e) => { stops.push(e.message); });
    let id = 0;
    const call = async (h: number, m: string, a: unknown[]) => {
      const msg: FromChild & { t: 'call' } = { t: 'call', id: ++id, h, m, a };
      const mine = id;
      host.handle(msg);
      return waitFor(() => replies.get(mine), { timeoutMs: 10_000, what: `the reply to ${m}` });
    };
    return { host, call, stops };
  }

  it('does not serve waitForURL (page or frame): the worker would run the glob or RegExp on its event loop', async () => {
    const { host, call } = hostile();
    const glob = await call(host.pageRef.$h, 'waitForURL', ['data:**a**a**a**a**a**a**a**b']);
    assert.equal(glob.ok, false);
    assert.match(glob.e!.message, /page\.waitForURL is not part of the script page API/);
    const re = await call(host.pageRef.$h, 'waitForURL', [{ $re: ['(a+)+$', ''] }]);
    assert.equal(re.ok, false);
    const frame = (await call(host.pageRef.$h, 'mainFrame', [])).v as { $h: number };
    const onFrame = await call(frame.$h, 'waitForURL', ['**a**a**a**a**b']);
    assert.equal(onFrame.ok, false);
    assert.match(onFrame.e!.message, /frame\.waitForURL is not part of the script page API/);
  });

  it('takes only a frame name in page.frame, never a { url } matcher', async () => {
    const { host, call } = hostile();
    for (const url of ['**a**a**a**a**b', { $re: ['(a+)+$', ''] }]) {
      const r = await call(host.pageRef.$h, 'frame', [{ url }]);
      assert.equal(r.ok, false, JSON.stringify(r));
      assert.match(r.e!.message, /takes a frame name here/);
    }
    const byName = await call(host.pageRef.$h, 'frame', ['no-such-frame']);
    assert.equal(byName.ok, true);
    assert.equal(byName.v, null);
  });

  it('reports navigations as URLs, waits for the next one, and times out; it never sees what the child matches', async () => {
    const { host, call } = hostile();
    const now = await call(host.pageRef.$h, 'navigations', [-1]);
    assert.deepEqual(now.v, { seq: 0, urls: [page.url()] });
    const next = call(host.pageRef.$h, 'navigations', [0, 10_000]);
    await page.goto('data:text/html,<title>next</title>');
    assert.deepEqual((await next).v, { seq: 1, urls: [page.url()] });
    const idle = await call(host.pageRef.$h, 'navigations', [1, 200]);
    assert.equal(idle.ok, false);
    assert.deepEqual(idle.e, { name: 'TimeoutError', message: 'Timeout 200ms exceeded.' });
    const bad = await call(host.pageRef.$h, 'navigations', ['x']);
    assert.equal(bad.ok, false);
  });

  it('hands Playwright a RegExp stand-in for the page: a real RegExp there, nothing it could run in the worker', async () => {
    const { host, call } = hostile();
    const r = await call(host.pageRef.$h, 'evaluate', [{ $fn: '(re) => [re instanceof RegExp, re.source, re.flags, re.test("xAAB")]' }, { $re: ['a+b', 'i'] }]);
    assert.deepEqual(r.v, [true, 'a+b', 'i', true]);
    const stand = pageRegExp('(a+)+$', 'u') as Record<string, unknown>;
    assert.equal(Object.prototype.toString.call(stand), '[object RegExp]');
    assert.equal(String(stand), '/(a+)+$/u');
    assert.equal(stand['test'], undefined);
    assert.equal(stand['exec'], undefined);
    assert.equal(stand instanceof RegExp, false);
    const badFlags = await call(host.pageRef.$h, 'evaluate', [{ $fn: '(re) => 1' }, { $re: ['a', 'x'] }]);
    assert.equal(badFlags.ok, false);
  });
});

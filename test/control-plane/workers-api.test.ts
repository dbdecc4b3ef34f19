/**
 * GET /api/workers, `sri workers` and the API's /metrics on real services: redis-server, s3rver, PGlite, the API in
 * this process and two worker processes with Chromium. A worker killed with SIGKILL while it runs a job is listed
 * as lost — with its job, until the queue takes the job back — and the other worker runs the job again.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { insertUser } from '../../src/control-plane/db/queries/accounts.ts';
import { TokenService } from '../../src/control-plane/http/auth.ts';
import { workersForOrg } from '../../src/control-plane/http/routes/workers.ts';
import { keys } from '../../src/shared/keys.ts';
import { JobQueue } from '../../src/shared/queue/job-queue.ts';
import { ResultMessage } from '../../src/shared/schemas.ts';
import { listWorkers, type WorkerList, type WorkerListing } from '../../src/shared/worker-registry.ts';
import { startTestApi, TEST_JWT_SECRET, type TestApi, type TestOrg } from '../support/api.ts';
import { runSri } from '../support/cli.ts';
import { metricValue, scrape } from '../support/metrics.ts';
import { tempDir, TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import { setSession, signedJob } from '../execution-plane/support/jobs.ts';
import { kill9, spawnWorker, stopWorker, waitForHeartbeat, type WorkerProcess } from '../faults/support/processes.ts';

/** The queue series name organisations: the API serves them only with METRICS_TOKEN (docs/observability.md). */
const SCRAPE_TOKEN = `scrape-${randomUUID()}`;

/** Sleeps a minute on its first attempt (long enough to be killed in), finishes at once on the next. */
const RECOVERABLE_SCRIPT = `export default async function run({ page, helpers, context }) {
  if (context.attempt === 1) await page.waitForTimeout(60000);
  helpers.setResult({ attempt: context.attempt });
}
`;

describe('worker registry through the API and the CLI, with a worker killed by SIGKILL', () => {
  const dir = tempDir('sri-workers-api-');
  let t: TestApi;
  let a: TestOrg;
  let b: TestOrg;
  let memberToken: string;
  let queue: JobQueue;
  const workers: WorkerProcess[] = [];
  let workerEnv: Record<string, string>;

  before(async () => {
    t = await startTestApi({ METRICS_TOKEN: SCRAPE_TOKEN });
    queue = await JobQueue.connect(t.redis);
    [a, b] = [await t.createOrg(), await t.createOrg()];
    // There is no endpoint that adds a member yet; one is inserted as an invitation would.
    const memberId = randomUUID();
    await t.db.withOrg(a.orgId, (tx) => insertUser(tx, {
      id: memberId, org_id: a.orgId, email: `member-${randomUUID()}@example.com`, name: 'Member', password_hash: 'x', role: 'member',
    }));
    memberToken = await new TokenService(TEST_JWT_SECRET, 3600).sign({ userId: memberId, orgId: a.orgId });
    workerEnv = {
      REDIS_URL: t.redisUrl, S3_ENDPOINT: t.config.s3Endpoint, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, LOG_DIR: `${dir.path}/logs`,
      // Lost after 3 × 500 ms without a heartbeat; a lease lapses 3 s after its last renewal.
      WORKER_HEARTBEAT_INTERVAL_MS: '500', WORKER_LEASE_MS: '3000', WORKER_RECOVERY_INTERVAL_MS: '200', WORKER_POLL_INTERVAL: '100',
      WORKER_MAX_JOBS: '1', WORKER_HTTP_PORT: '0',
    };
  });

  after(async () => {
    for (const w of workers) await stopWorker(w);
    await t?.stop();
    dir.remove();
  });

  const get = async (path: string, token?: string) => {
    const r = await fetch(t.api.url + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    return { status: r.status, body: await r.json() as any };
  };
  const listed = async (token: string) => (await get('/api/workers', token)).body as Pick<WorkerList, 'workers' | 'counts'>;
  const find = (list: { workers: WorkerListing[] }, id: string) => list.workers.find((w) => w.workerId === id);

  async function startWorkerProcess(name: string): Promise<WorkerProcess> {
    const w = spawnWorker(workerEnv, `${name}-${randomUUID().slice(0, 6)}`);
    workers.push(w);
    await waitForHeartbeat(t.redisUrl, w);
    return w;
  }

  it('lists the workers for admins only; another organisation\'s admin sees nothing of the job', async () => {
    const first = await startWorkerProcess('first');
    await setSession(t.redis, a.orgId, 'user-1', { cookies: [], connectedAt: Date.now() });
    const job = signedJob(a.orgId, RECOVERABLE_SCRIPT);
    await queue.enqueue(a.orgId, job);
    await waitFor(async () => (await t.redis.get(keys.jobStatus(job.jobId))) === 'running', { timeoutMs: 30_000, what: 'job running' });

    const mine = await waitFor(async () => {
      const w = find(await listed(a.token), first.workerId);
      return w?.state === 'busy' ? w : undefined;
    }, { what: 'the worker busy in GET /api/workers' });
    assert.equal(mine.jobsInFlight, 1);
    assert.deepEqual(mine.jobs.map((j) => [j.jobId, j.orgId, j.attempt]), [[job.jobId, a.orgId, 1]]);
    assert.ok(mine.heartbeatAgeMs !== null && mine.heartbeatAgeMs < 5000);
    assert.ok(mine.lastHeartbeat && mine.startedAt);
    assert.equal(mine.heartbeatIntervalMs, 500);
    assert.ok(mine.resources && mine.resources.memory.usedBytes > 0, 'resource usage');
    assert.equal(mine.maxJobs, 1);
    for (const hidden of ['host', 'pid', 'httpUrl', 'stats']) assert.ok(!(hidden in mine), `${hidden} is for operators (sri workers)`);
    assert.match(mine.sandbox ?? '', /^sandbox-(bwrap|process)$/, 'the admin sees how the worker isolates their scripts');

    // b's admin: the worker is alive with its capacity, but neither the job nor that one runs, nor a's totals.
    const theirList = await listed(b.token);
    const theirs = find(theirList, first.workerId)!;
    assert.equal(theirs.state, 'ready', 'busy only with jobs of other organisations: ready to b');
    assert.equal(theirs.reportedState, 'ready');
    assert.equal(theirs.jobsInFlight, 0);
    assert.deepEqual(theirs.jobs, []);
    assert.equal(theirList.counts.busy, 0);
    assert.equal(theirs.maxJobs, 1);
    const text = JSON.stringify(theirList);
    for (const leak of [job.jobId, a.orgId, '"stats"', '"totalJobs"']) assert.ok(!text.includes(leak), `b's view holds no ${leak}`);
    // a's view of the same worker is busy, with the job.
    assert.equal((await listed(a.token)).counts.busy, 1);

    const member = await get('/api/workers', memberToken);
    assert.equal(member.status, 403);
    assert.equal(member.body.error.code, 'FORBIDDEN');
    assert.equal((await get('/api/workers')).status, 401);
  });

  it('shows a worker killed with SIGKILL as lost with its job, until the other worker recovers and runs it', async () => {
    const first = workers[0]!;
    const jobId = find(await listed(a.token), first.workerId)!.jobs[0]!.jobId!;
    const second = await startWorkerProcess('second');

    await kill9(first);
    const lost = await waitFor(async () => {
      const w = find(await listed(a.token), first.workerId);
      return w?.state === 'lost' ? w : undefined;
    }, { what: 'the killed worker listed as lost' });
    assert.equal(lost.reportedState, 'busy', 'its last words');
    assert.equal(lost.jobsInFlight, 1, 'its job is still leased to it: the lease has not lapsed yet');
    assert.equal(lost.jobs[0]!.jobId, jobId);

    // Its lease lapses, the second worker takes the job back (recoverExpired) and runs it as attempt 2.
    const raw = await waitFor(() => t.redis.get(keys.jobResult(jobId)), { timeoutMs: 30_000, what: 'the recovered job\'s result' });
    const result = ResultMessage.parse(JSON.parse(raw));
    assert.equal(result.status, 'done', JSON.stringify(result.error));
    assert.equal(result.attempt, 2);
    assert.equal(result.workerId, second.workerId);

    const list = await listed(a.token);
    assert.equal(find(list, first.workerId)!.state, 'lost');
    assert.equal(find(list, first.workerId)!.jobsInFlight, 0, 'nothing leased to the dead worker any more');
    // The worker's totals are every organisation's jobs: operators read them (sri workers), not the API.
    const alive = await waitFor(async () => {
      const w = find(await listWorkers(t.redis), second.workerId);
      return w?.state === 'ready' && w.stats?.totalJobs === 1 ? w : undefined;
    }, { what: 'the second worker ready with one job done' });
    assert.equal(alive.stats!.successfulJobs, 1);
    assert.equal(find(await listed(a.token), second.workerId)!.state, 'ready');
    assert.equal(list.counts.lost, 1);
  });

  it('prints the same with `sri workers` straight from Redis', async () => {
    const [first, second] = workers as [WorkerProcess, WorkerProcess];
    const env = { REDIS_URL: t.redisUrl };
    const plain = await runSri(['workers'], env);
    assert.equal(plain.code, 0, plain.stderr);
    const rows = plain.stdout.split('\n');
    assert.match(rows[0]!, /^WORKER\s+STATE\s+HEARTBEAT\s+JOBS\s+CPU\s+MEMORY\s+DONE\/FAILED\s+SANDBOX\s+HOST\s+METRICS$/);
    assert.match(rows.find((r) => r.startsWith(first.workerId)) ?? '', /\slost\s/);
    assert.match(rows.find((r) => r.startsWith(second.workerId)) ?? '', /\sready\s.*\s0\/1\s.*\s1\/0\s/);

    const json = await runSri(['workers', '--json'], env);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as WorkerList;
    assert.deepEqual(parsed.workers.map((w) => w.state).sort(), ['lost', 'ready']);
    const secondRow = parsed.workers.find((w) => w.workerId === second.workerId)!;
    assert.equal(secondRow.pid, second.child.pid);
    assert.match(secondRow.httpUrl ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(secondRow.sandbox, 'sandbox-bwrap', 'the operator sees how the worker isolates scripts');
    assert.equal(parsed.counts.lost, 1);

    const onlyLost = await runSri(['workers', '--lost', '--exit-code'], env);
    assert.equal(onlyLost.code, 2, 'exit 2: a worker is lost');
    assert.ok(onlyLost.stdout.includes(first.workerId));
    assert.ok(!onlyLost.stdout.includes(second.workerId));

    const down = await runSri(['workers'], { REDIS_URL: 'redis://127.0.0.1:1' });
    assert.equal(down.code, 1);
    assert.match(down.stderr, /^error SERVICE_UNAVAILABLE: cannot reach Redis/m);
  });

  it('serves the API\'s request latency and status, and the queue depths, on /metrics', async () => {
    await get('/api/no-such-thing');
    const auth = { authorization: `Bearer ${SCRAPE_TOKEN}` };
    const m = await scrape(`${t.api.url}/metrics`, auth);
    assert.ok(metricValue(m, 'sri_http_request_duration_seconds_count', { method: 'GET', route: '/api/workers', status_code: '200' })! >= 3);
    assert.ok(metricValue(m, 'sri_http_request_duration_seconds_count', { route: '/api/workers', status_code: '403' })! >= 1);
    assert.ok(metricValue(m, 'sri_http_request_duration_seconds_bucket', { route: '/api/workers', status_code: '200', le: '+Inf' })! >= 3);
    assert.ok(metricValue(m, 'sri_http_request_duration_seconds_count', { route: 'unmatched', status_code: '404' })! >= 1, 'unknown URLs share one label');
    assert.ok(!m.some((s) => s.labels['route'] === '/api/no-such-thing'), 'raw URLs never become labels');
    assert.equal(metricValue(m, 'sri_queue_metrics_up'), 1);
    assert.equal(metricValue(m, 'sri_queue_waiting_jobs'), 0);
    assert.ok(metricValue(m, 'process_cpu_seconds_total')! > 0);

    // A job nobody takes: the workers stop first (a running worker could take it before it was counted), then the
    // queue depth of its organisation shows it.
    for (const w of workers) await stopWorker(w);
    await queue.enqueue(b.orgId, signedJob(b.orgId, RECOVERABLE_SCRIPT, { createdAt: new Date(Date.now() - 90_000).toISOString() }));
    // Readings are cached for 5 s: within that the gauge may still show the reading from before the push.
    const m2 = await waitFor(async () => {
      const s = await scrape(`${t.api.url}/metrics`, auth);
      return metricValue(s, 'sri_queue_length', { org: b.orgId }) === 1 ? s : undefined;
    }, { timeoutMs: 60_000, intervalMs: 500, what: 'the queue depth of b (readings are cached for 5 s)' });
    assert.ok(metricValue(m2, 'sri_queue_oldest_job_age_seconds', { org: b.orgId })! >= 90);
    assert.equal(metricValue(m2, 'sri_queue_waiting_jobs'), 1);
  });
});

describe('GET /metrics with METRICS_TOKEN', () => {
  let t: TestApi;
  const token = `metrics-${randomUUID()}`;
  before(async () => { t = await startTestApi({ METRICS_TOKEN: token }); });
  after(async () => { await t?.stop(); });

  it('answers only the bearer of the token', async () => {
    const none = await fetch(`${t.api.url}/metrics`);
    assert.equal(none.status, 401);
    assert.equal((await none.json() as any).error.code, 'UNAUTHENTICATED');
    assert.equal((await fetch(`${t.api.url}/metrics`, { headers: { authorization: 'Bearer wrong-token-of-some-length' } })).status, 401);
    const ok = await fetch(`${t.api.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(ok.status, 200);
    assert.match(ok.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    assert.match(await ok.text(), /^# TYPE sri_http_request_duration_seconds histogram$/m);
  });
});

describe('GET /api/workers as one organisation sees it (workersForOrg)', () => {
  const worker = (over: Partial<WorkerListing>): WorkerListing => ({
    workerId: 'w', state: 'busy', reportedState: 'busy', host: 'h', pid: 1, startedAt: null, lastHeartbeat: null, heartbeatAgeMs: 0,
    heartbeatIntervalMs: 10_000, maxJobs: 2, jobsInFlight: 0, jobs: [], resources: null, httpUrl: 'http://127.0.0.1:9464', sandbox: 'sandbox-bwrap',
    stats: { startedAt: null, totalJobs: 9, successfulJobs: 8, failedJobs: 1, averageDurationMs: 5, lastJobAt: null }, ...over,
  });
  const jobOf = (orgId: string, jobId: string) => ({ jobId, orgId, attempt: 1, takenAt: null });

  it('keeps nothing of organisation B\'s jobs in what organisation A\'s admin sees', () => {
    const list = {
      workers: [
        worker({ workerId: 'both', jobsInFlight: 2, jobs: [jobOf('org-a', 'job-a'), jobOf('org-b', 'job-b')] }),
        worker({ workerId: 'only-b', jobsInFlight: 1, jobs: [jobOf('org-b', 'job-b2')] }),
        worker({ workerId: 'lost-b', state: 'lost', reportedState: 'busy', jobsInFlight: 1, jobs: [jobOf('org-b', 'job-b3')] }),
        worker({ workerId: 'draining', state: 'draining', reportedState: 'draining', jobsInFlight: 1, jobs: [jobOf('org-b', 'job-b4')] }),
      ],
      counts: { starting: 0, ready: 0, busy: 2, reconnecting: 0, draining: 1, stopped: 0, lost: 1 },
    };
    const seen = workersForOrg(list, 'org-a');
    assert.deepEqual(seen.workers.map((w) => [w.workerId, w.state, w.reportedState, w.jobsInFlight, w.jobs.map((j) => j.jobId)]), [
      ['both', 'busy', 'busy', 1, ['job-a']],
      ['only-b', 'ready', 'ready', 0, []],
      ['lost-b', 'lost', 'ready', 0, []],
      ['draining', 'draining', 'draining', 0, []],
    ]);
    assert.deepEqual(seen.counts, { starting: 0, ready: 1, busy: 1, reconnecting: 0, draining: 1, stopped: 0, lost: 1 });
    const text = JSON.stringify(seen);
    for (const leak of ['org-b', 'job-b', 'totalJobs', 'http://', '"host"', '"pid"']) assert.ok(!text.includes(leak), `no ${leak}`);
  });
});

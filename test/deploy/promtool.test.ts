/**
 * Prometheus' own tool on what deploy/observability/ and the code give Prometheus:
 *   - `promtool check rules` and `check config` on alerts.yml and prometheus.yml, and `promtool test rules` on
 *     alerts.test.yml — the unit tests of the alert rules, which must have, for every alert, a case where it fires
 *     and one where it does not (checked here without promtool);
 *   - `promtool check metrics` (Prometheus' naming and format lint) on the API's `/metrics` — with and without
 *     METRICS_TOKEN — and a worker's, served by the code that serves them, on real Redis, S3 and PGlite, with the
 *     series that appear only once something happened (requests, jobs, queues) present.
 * promtool comes with Debian's `prometheus` package, which `npm install` installs as root
 * (scripts/install-system-deps.mjs); where it is missing these tests are skipped, saying so.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { WorkerMetrics } from '../../src/execution-plane/observability/metrics.ts';
import { startWorkerHttpServer, type WorkerHttpServer } from '../../src/execution-plane/observability/http-server.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { startTestApi, type TestApi } from '../support/api.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIR = join(ROOT, 'deploy', 'observability');
const METRICS_TOKEN = 'promtool-test-metrics-token-0123456789';

function findPromtool(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' });
  const path = r.stdout.trim();
  return r.status === 0 && path ? path : undefined;
}
const PROMTOOL = findPromtool();
const SKIP = PROMTOOL ? false
  : 'promtool is not installed: it comes with Debian\'s `prometheus` package (apt-get install --no-install-recommends prometheus; `npm install` installs it as root)';
if (SKIP) process.stderr.write(`# skipping the promtool tests: ${SKIP}\n`);

function promtool(args: string[], input?: string): { code: number | null; output: string } {
  const r = spawnSync(PROMTOOL!, args, { cwd: DIR, input, encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw r.error;
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}

type Obj = Record<string, any>;

describe('deploy/observability with promtool', () => {
  it('every alert of alerts.yml has a promtool test where it fires and one where it does not', () => {
    const rules = parse(readFileSync(join(DIR, 'alerts.yml'), 'utf8')) as Obj;
    const tests = parse(readFileSync(join(DIR, 'alerts.test.yml'), 'utf8')) as Obj;
    assert.deepEqual(tests['rule_files'], ['alerts.yml']);
    const alerts = (rules['groups'] as Obj[]).flatMap((g) => (g['rules'] as Obj[]).map((r) => r['alert'] as string));
    const cases = (tests['tests'] as Obj[]).flatMap((t) => (t['alert_rule_test'] ?? []) as Obj[]);
    for (const alert of alerts) {
      const mine = cases.filter((c) => c['alertname'] === alert);
      assert.ok(mine.some((c) => (c['exp_alerts'] ?? []).length > 0), `a case where ${alert} fires`);
      assert.ok(mine.some((c) => (c['exp_alerts'] ?? []).length === 0), `a case where ${alert} does not fire`);
    }
    for (const c of cases) assert.ok(alerts.includes(c['alertname']), `${c['alertname']} is an alert of alerts.yml`);
    assert.ok(alerts.includes('SriApiDown'), 'an alert for an API that is down');
  });

  it('promtool check rules and check config accept alerts.yml and prometheus.yml', { skip: SKIP }, () => {
    const rules = promtool(['check', 'rules', 'alerts.yml']);
    assert.equal(rules.code, 0, rules.output);
    assert.match(rules.output, /SUCCESS: \d+ rules found/);
    const config = promtool(['check', 'config', 'prometheus.yml']);
    assert.equal(config.code, 0, config.output);
  });

  it('promtool test rules passes alerts.test.yml', { skip: SKIP }, () => {
    const r = promtool(['test', 'rules', 'alerts.test.yml']);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /SUCCESS/);
  });

  it('promtool test rules notices a rule that does not behave as its test says', { skip: SKIP }, () => {
    // The same tests against a copy of the rules where SriApiDown cannot see an API that is gone.
    const broken = readFileSync(join(DIR, 'alerts.yml'), 'utf8').replace(/ or absent\(up\{job="sri-api"\}\)/, '');
    assert.notEqual(broken, readFileSync(join(DIR, 'alerts.yml'), 'utf8'));
    const tmp = mkdtempSync(join(tmpdir(), 'sri-promtool-'));
    try {
      writeFileSync(join(tmp, 'alerts.yml'), broken);
      writeFileSync(join(tmp, 'alerts.test.yml'), readFileSync(join(DIR, 'alerts.test.yml')));
      const r = spawnSync(PROMTOOL!, ['test', 'rules', 'alerts.test.yml'], { cwd: tmp, encoding: 'utf8', timeout: 120_000 });
      assert.notEqual(r.status, 0);
      assert.match(`${r.stdout}${r.stderr}`, /SriApiDown/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('promtool check metrics on the API\'s and a worker\'s /metrics', { skip: SKIP }, () => {
  let t: TestApi;
  /** The same API without METRICS_TOKEN: /metrics open, without the queue series. */
  let open: ApiHandle;
  let server: WorkerHttpServer;

  before(async () => {
    t = await startTestApi({ METRICS_TOKEN });
    // Series that exist only once something happened: requests (a 404 among them) and a queued job.
    const org = await t.createOrg();
    await t.runJob(org);
    await fetch(`${t.api.url}/api/no-such-route`);
    open = await startApi({ ...t.config, metricsToken: undefined }, {
      db: t.db, redis: t.redis, blobStore: t.blobStore, logger: createLogger({ name: 'promtool-api', level: 'silent' }),
    });
    await fetch(`${open.url}/health`);

    const metrics = new WorkerMetrics({
      workerId: 'promtool-worker', redis: t.redis, queueMaxOrgs: 10,
      sources: {
        state: () => 'busy', jobsInFlight: () => 1, maxJobs: () => 2, redisState: () => 'connected', redisOutageMs: () => 0,
        redisReconnects: () => 1, lastHeartbeatAt: () => Date.now() - 2000, browserUp: () => true,
        resources: () => ({
          source: 'cgroup-v2', sampledAt: Date.now(), cpu: { usageSeconds: 12, percent: 35, limitCores: 2 },
          memory: { usedBytes: 300e6, limitBytes: 1e9 }, process: { rssBytes: 200e6, heapUsedBytes: 50e6 },
          system: { cpus: 2, loadAverage1m: 0.5, totalMemoryBytes: 4e9, freeMemoryBytes: 1e9 },
        }),
        eventLoop: () => ({ maxDelayMs: 12, sinceLastTickMs: 5, windowMs: 10_000, limitMs: 5000, stuck: false, blocks: 0 }),
      },
    });
    metrics.jobFinished({ providerId: 'demo', flowId: 'flow-1' }, 'done', 1500);
    metrics.jobFinished({ providerId: 'demo', flowId: 'flow-1' }, 'failed', 800, 'SCRIPT_ERROR');
    metrics.liveLogClosed({ written: 10, droppedLines: 3, droppedBatches: 1 });
    metrics.browserRestarted();
    metrics.heartbeatFailed();
    server = await startWorkerHttpServer({
      port: 0, host: '127.0.0.1', registry: metrics.registry, logger: createLogger({ name: 'promtool-worker', level: 'silent' }),
      probes: { eventLoop: () => ({ maxDelayMs: 0, sinceLastTickMs: 0, windowMs: 10_000, limitMs: 5000, stuck: false, blocks: 0 }), state: () => 'ready', redisState: () => 'connected', pingRedis: () => t.redis.ping(), browserUp: () => true },
    });
  });
  after(async () => {
    await server?.close();
    await open?.close();
    await t?.stop();
  });

  async function check(url: string, headers: Record<string, string>, expect: string[]): Promise<void> {
    const res = await fetch(url, { headers });
    assert.equal(res.status, 200, url);
    const text = await res.text();
    // promtool passes an empty text: make sure this is the real thing.
    for (const name of [...expect, 'process_cpu_seconds_total', 'nodejs_active_handles']) {
      assert.match(text, new RegExp(`^${name}[{ ]`, 'm'), `${url} exports ${name}`);
    }
    assert.doesNotMatch(text, /^nodejs_active_\w+_total/m, 'no gauge named like a counter');
    const r = promtool(['check', 'metrics'], text);
    assert.equal(r.output.trim(), '', `${url}: promtool check metrics says:\n${r.output}`);
    assert.equal(r.code, 0, r.output);
  }

  it('the API\'s /metrics without the token', async () => {
    await check(`${open.url}/metrics`, {}, ['sri_http_request_duration_seconds_bucket']);
  });

  it('the API\'s /metrics with METRICS_TOKEN, the per-organisation queue series included', async () => {
    await check(`${t.api.url}/metrics`, { authorization: `Bearer ${METRICS_TOKEN}` }, ['sri_http_request_duration_seconds_count', 'sri_queue_length']);
  });

  it('a worker\'s /metrics', async () => {
    await check(`${server.url}/metrics`, {}, [
      'sri_job_duration_seconds_bucket', 'sri_job_results_total', 'sri_browser_restarts_total', 'sri_worker_state',
      'sri_worker_memory_bytes', 'sri_queue_length',
    ]);
  });
});

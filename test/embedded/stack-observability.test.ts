/**
 * `sri up` with two workers: each worker gets its own HTTP port (WORKER_HTTP_PORT, + 1 for the second), the summary
 * says where the API's and every worker's metrics are, and each one answers there.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { describeStack, startStack, type StackHandle } from '../../src/embedded/stack.ts';
import { freePort, portInUse } from '../../src/embedded/ports.ts';
import { tempDir, waitFor } from '../support/services.ts';
import { metricValue, scrape } from '../support/metrics.ts';
import { seedStackDatabase } from '../support/database.ts';

/** The caller's environment without anything that would point the stack at external services. */
function cleanEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(REDIS_URL|S3_|DATABASE_URL|POSTGRES_|API_|JWT_|SCRIPT_SIGNING_SECRET|WORKER|PORT|HOST|DEMO_PORT|DATA_DIR|LOG_DIR|METRICS_)/.test(k)) delete env[k];
  }
  return env;
}

/** A port p with p + 1 free as well. */
async function twoFreePorts(): Promise<number> {
  for (;;) {
    const p = await freePort();
    if (p < 65535 && !(await portInUse(p + 1))) return p;
  }
}

describe('sri up: where the metrics are', () => {
  const dir = tempDir('sri-stack-obs-');
  let stack: StackHandle;
  let httpBase: number;

  before(async () => {
    // A migrated PGlite in DATA_DIR (test/support/database.ts): the stack resumes it instead of running initdb.
    await seedStackDatabase(`${dir.path}/data`);
    httpBase = await twoFreePorts();
    stack = await startStack({
      env: {
        ...cleanEnv(),
        DATA_DIR: `${dir.path}/data`, LOG_DIR: `${dir.path}/logs`, LOG_LEVEL: 'warn',
        EMBEDDED_REDIS_PORT: '0', EMBEDDED_S3_PORT: '0', PORT: '0', DEMO_PORT: '0', WORKERS: '2', WORKER_HTTP_PORT: String(httpBase),
      },
      onWorkerOutput: () => {},
    });
  });

  after(async () => {
    await stack?.stop({ graceMs: 5000 });
    dir.remove();
  });

  it('gives worker N the port WORKER_HTTP_PORT + N - 1 and prints every metrics URL', () => {
    assert.deepEqual(stack.workers.map((w) => w.httpUrl), [`http://127.0.0.1:${httpBase}`, `http://127.0.0.1:${httpBase + 1}`]);
    const summary = describeStack(stack);
    assert.ok(summary.includes(`metrics: ${stack.apiUrl}/metrics`), summary);
    for (const w of stack.workers) assert.ok(summary.includes(`${w.workerId} (pid ${w.pid}, sandbox bwrap) metrics ${w.httpUrl}/metrics`), summary);
  });

  it('serves each worker\'s own metrics and probes, and the API\'s', async () => {
    for (const w of stack.workers) {
      // The first heartbeat (which `sri up` waits for) comes before Chromium is up: ready follows shortly.
      await waitFor(async () => (await fetch(`${w.httpUrl}/readyz`)).status === 200, { timeoutMs: 60_000, what: `${w.workerId} ready` });
      const m = await scrape(`${w.httpUrl}/metrics`);
      assert.equal(metricValue(m, 'sri_worker_state', { worker_id: w.workerId, state: 'ready' }), 1);
      assert.equal((await fetch(`${w.httpUrl}/healthz`)).status, 200);
    }
    // Without METRICS_TOKEN the API serves its own metrics but not the per-organisation queue series.
    const api = await scrape(`${stack.apiUrl}/metrics`);
    assert.ok(metricValue(api, 'process_cpu_seconds_total')! > 0);
    assert.equal(metricValue(api, 'sri_queue_metrics_up'), undefined);
  });
});

describe('sri up: says when its workers run scripts without namespaces', () => {
  const dir = tempDir('sri-stack-sandbox-');
  let stack: StackHandle | undefined;
  const progress: string[] = [];

  after(async () => {
    await stack?.stop({ graceMs: 5000 });
    dir.remove();
  });

  it('prints a warning while starting and names the sandbox in the summary', async () => {
    await seedStackDatabase(`${dir.path}/data`);
    stack = await startStack({
      env: {
        ...cleanEnv(), DATA_DIR: `${dir.path}/data`, LOG_DIR: `${dir.path}/logs`, LOG_LEVEL: 'warn', WORKER_SANDBOX: 'process',
        EMBEDDED_REDIS_PORT: '0', EMBEDDED_S3_PORT: '0', PORT: '0', DEMO_PORT: '0', WORKERS: '1', WORKER_HTTP_PORT: 'off',
      },
      onWorkerOutput: () => {},
      onProgress: (line) => progress.push(line),
    });
    assert.deepEqual(stack.workers.map((w) => w.sandbox), ['sandbox-process']);
    assert.ok(progress.some((l) => /^WARNING: worker .* runs scripts WITHOUT namespaces/.test(l)), progress.join('\n'));
    assert.match(describeStack(stack), /\(pid \d+, sandbox process\)/);
  });
});

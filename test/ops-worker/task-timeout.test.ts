/**
 * The ops worker's whole-task time limit (OPS_TASK_TIMEOUT_MS, docs/operations.md "Statuses"), with real processes
 * and no container engine: `sri ops-worker` as a process of its own on a real redis-server, its steps running a fake
 * `docker-compose` and `docker` (shell scripts this test writes, first on the worker's PATH) whose `pull` hangs
 * (`sleep 600`). What must hold:
 *   - the update ends `failed` with OPS_TASK_TIMEOUT, the step that was running (`pull`) and a message saying what to
 *     do; the live log says the limit was reached;
 *   - the hung step's whole process group is gone (the step script, the fake compose and its `sleep 600`);
 *   - the rollback runs after the deadline as designed (rollback-retag, rollback-up at the recorded version,
 *     rollback-health), and the outcome says so (details.rolledBack, details.rollbackHealthy);
 *   - a task queued meanwhile waits, then runs once the timed-out one ended, and a new update is accepted and done;
 *   - nothing is left under OPS_WORK_DIR.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { freePort } from '../../src/embedded/ports.ts';
import { keys } from '../../src/shared/keys.ts';
import { OpsQueue } from '../../src/shared/ops/queue.ts';
import type { OpsResultMessage, OpsTaskMessage } from '../../src/shared/ops/schemas.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { startTestRedis, tempDir, waitFor } from '../support/services.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const TASK_TIMEOUT_MS = 6000;
const by = { identity: 'operator:0123456789ab' };
const update = (targetVersion: string): OpsTaskMessage => ({ taskId: randomUUID(), kind: 'system.update', params: { targetVersion, runMigrations: false }, requestedBy: by, requestedAt: new Date().toISOString() });
const check = (): OpsTaskMessage => ({ taskId: randomUUID(), kind: 'system.check', params: {}, requestedBy: by, requestedAt: new Date().toISOString() });

/** A process that exists and is not a zombie (a killed child not yet reaped would still have /proc/<pid>). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function pgidOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

describe('ops worker: the task time limit (OPS_TASK_TIMEOUT_MS) with real processes', () => {
  const dir = tempDir('sri-ops-timeout-');
  const bin = join(dir.path, 'bin');
  const workDir = join(dir.path, 'ops-work');
  const calls = join(dir.path, 'calls.log');
  const pidsFile = join(dir.path, 'pull.pids');
  const hangMarker = join(dir.path, 'hang-pull');
  let server: Awaited<ReturnType<typeof startTestRedis>>;
  let redis: Redis;
  let q: OpsQueue;
  let registry: Server;
  let worker: ChildProcess;
  let workerOutput = '';

  const outcomeOf = async (taskId: string): Promise<OpsResultMessage> => {
    const r = (await q.pendingResults()).find((p) => p.taskId === taskId)?.result;
    assert.ok(r, `the outcome of ${taskId} is in sri:ops:results`);
    return r;
  };
  const finished = (taskId: string, timeoutMs = 120_000) => waitFor(async () => {
    const s = await q.status(taskId);
    return s === 'done' || s === 'failed' || s === 'interrupted' ? s : undefined;
  }, { timeoutMs, intervalMs: 100, what: `task ${taskId} to end (ops worker said: ${workerOutput.slice(-2000)})` });

  before(async () => {
    mkdirSync(bin, { recursive: true });
    // The fake compose: `-f FILE -p PROJECT <command> …`. `pull` hangs while the marker exists, its `sleep 600` a child
    // of its own; it writes "<sleep pid> <its pid> <the step script's pid>" first.
    writeFileSync(join(bin, 'docker-compose'), `#!/bin/bash
echo "compose SRI_VERSION=\${SRI_VERSION:-} $*" >> '${calls}'
while [ $# -gt 0 ]; do case "$1" in -f|-p) shift 2 ;; *) break ;; esac; done
case "\${1:-}" in
  ps) echo cid-web ;;
  pull)
    if [ -e '${hangMarker}' ]; then
      echo "Pulling web ... (hangs)"
      sleep 600 &
      echo "$! $$ $PPID" > '${pidsFile}'
      wait
    fi
    echo "Pulling web ... done" ;;
  up) echo "Starting web ... done" ;;
esac
`);
    // The fake docker CLI: what the record and health steps parse, `tag` for the rollback.
    writeFileSync(join(bin, 'docker'), `#!/bin/bash
echo "docker $*" >> '${calls}'
case "\${1:-}" in
  inspect)
    case "\${3:-}" in
      *State.Status*) echo "running healthy web" ;;
      *Config.Labels*) echo "service web 127.0.0.1:5000/sri/platform:1 sha256:1111111111111111111111111111111111111111111111111111111111111111" ;;
      *) echo "" ;;
    esac ;;
esac
`);
    chmodSync(join(bin, 'docker-compose'), 0o755);
    chmodSync(join(bin, 'docker'), 0o755);
    writeFileSync(hangMarker, '');

    // The registry's tags API, for the system.check that runs after the timed-out update.
    registry = createServer((req, res) => {
      if (req.url === '/v2/sri/platform/tags/list') res.writeHead(200, { 'content-type': 'application/json' }).end('{"name":"sri/platform","tags":["1","2"]}');
      else res.writeHead(404).end();
    });
    const registryPort = await freePort();
    await new Promise<void>((resolve) => registry.listen(registryPort, '127.0.0.1', resolve));

    server = await startTestRedis();
    redis = createRedis(server.url);
    q = OpsQueue.connect(redis);
    worker = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'ops-worker'], {
      cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, HOME: dir.path, REDIS_URL: server.url, LOG_LEVEL: 'info',
        OPS_WORKER_ID: 'ops-timeout-test', OPS_WORK_DIR: workDir, OPS_TASK_TIMEOUT_MS: String(TASK_TIMEOUT_MS),
        OPS_COMPOSE_COMMAND: 'docker-compose', OPS_COMPOSE_FILE: join(dir.path, 'compose.yml'), OPS_COMPOSE_PROJECT: 'sritimeout',
        OPS_REGISTRY: `127.0.0.1:${registryPort}`, OPS_REGISTRY_INSECURE: 'true', OPS_IMAGE_REPOSITORY: 'sri/platform',
        OPS_HEALTH_TIMEOUT_MS: '20000', OPS_LEASE_MS: '3000', OPS_POLL_INTERVAL_MS: '100',
      },
    });
    const keep = (d: Buffer) => { workerOutput = (workerOutput + d.toString()).slice(-20_000); };
    worker.stdout?.on('data', keep);
    worker.stderr?.on('data', keep);
    await waitFor(() => workerOutput.includes('ops worker ready') || worker.exitCode !== null, { timeoutMs: 90_000, what: 'the ops worker to start' });
    assert.equal(worker.exitCode, null, `the ops worker runs: ${workerOutput}`);
  });

  after(async () => {
    if (worker && worker.exitCode === null && worker.signalCode === null) {
      const exited = new Promise((r) => worker.once('exit', r));
      worker.kill('SIGTERM');
      const t = setTimeout(() => worker.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    }
    // A sleep the product failed to kill must not outlive the test.
    if (existsSync(pidsFile)) {
      for (const pid of readFileSync(pidsFile, 'utf8').trim().split(' ').map(Number)) if (pid > 1 && alive(pid)) process.kill(pid, 'SIGKILL');
    }
    redis?.disconnect();
    await server?.stop();
    await new Promise((r) => registry ? registry.close(r) : r(undefined));
    dir.remove();
  });

  it('fails a hung update with OPS_TASK_TIMEOUT, kills its process group, rolls back, cleans up and takes the next task', async () => {
    const hung = update('2');
    const started = Date.now();
    await q.enqueue(hung);

    // The pull hangs: its script, the fake compose and the sleep run in one process group led by the step script.
    const [sleepPid, composePid, scriptPid] = await waitFor(() => existsSync(pidsFile) && readFileSync(pidsFile, 'utf8').trim().split(' ').map(Number).length === 3
      ? readFileSync(pidsFile, 'utf8').trim().split(' ').map(Number) : undefined, { timeoutMs: 60_000, what: 'the pull step to start' }) as [number, number, number];
    assert.ok(alive(sleepPid) && alive(composePid) && alive(scriptPid), 'the hung step runs');
    assert.equal(pgidOf(scriptPid), scriptPid, 'the step script leads its own process group');
    assert.equal(pgidOf(sleepPid), scriptPid, 'the sleep is in the step\'s group');
    assert.equal(readdirSync(workDir).filter((n) => n.startsWith('step-')).length, 1, 'the running step\'s private directory is under OPS_WORK_DIR');
    assert.equal(await q.status(hung.taskId), 'running');

    // A task queued meanwhile waits behind it.
    const next = check();
    await q.enqueue(next);
    assert.equal(await q.status(next.taskId), 'queued');

    assert.equal(await finished(hung.taskId), 'failed');
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= TASK_TIMEOUT_MS, `not before the limit (${elapsed} ms)`);
    const r = await outcomeOf(hung.taskId);
    assert.equal(r.error?.code, 'OPS_TASK_TIMEOUT');
    assert.equal(r.error?.step, 'pull', 'the step that was running');
    assert.match(r.error?.message ?? '', new RegExp(`OPS_TASK_TIMEOUT_MS \\(${TASK_TIMEOUT_MS} ms\\)`));
    assert.match(r.error?.message ?? '', /raise OPS_TASK_TIMEOUT_MS/, 'the message says what to do');
    assert.match(r.error?.message ?? '', /rolled back to 1/, 'the message says where the services are');
    assert.ok(r.error?.outputTail?.some((l) => l.includes('Pulling web ... (hangs)')), `the hung step's output tail: ${JSON.stringify(r.error?.outputTail)}`);
    const pull = r.steps.find((s) => s.name === 'pull');
    assert.ok(pull && (pull.outcome === 'timeout' || pull.outcome === 'aborted') && pull.exitCode === null, `the pull was killed: ${JSON.stringify(pull)}`);

    // The whole group is gone, not only the script the worker spawned.
    await waitFor(() => !alive(sleepPid) && !alive(composePid) && !alive(scriptPid), { timeoutMs: 30_000, what: 'the hung step\'s process group to be gone' });

    // The rollback ran after the deadline (rollback steps are bounded by their own limits): the recorded image put
    // back, compose up at the version that ran before, health waited for.
    assert.deepEqual(r.steps.map((s) => s.name), ['record', 'pull', 'rollback-retag', 'rollback-up', 'rollback-health']);
    assert.ok(r.steps.filter((s) => s.name.startsWith('rollback-')).every((s) => s.outcome === 'ok'), JSON.stringify(r.steps));
    assert.equal(r.details?.rolledBack, true);
    assert.equal(r.details?.rollbackHealthy, true);
    const log = readFileSync(calls, 'utf8');
    assert.match(log, /docker tag sha256:1{64} 127\.0\.0\.1:5000\/sri\/platform:1/);
    assert.match(log, /compose SRI_VERSION=1 .* up -d --no-build/);
    const live = (await redis.xrange(keys.opsTaskLogs(hung.taskId), '-', '+')).map(([, f]) => f.join(' ')).join('\n');
    assert.match(live, /task time limit reached \(OPS_TASK_TIMEOUT_MS=6000\)/);

    // The worker is not stuck: the queued check runs, and a new update is accepted (the one-update mark is cleared).
    assert.equal(await finished(next.taskId), 'done');
    const c = await outcomeOf(next.taskId);
    assert.equal(c.details?.runningVersion, '1');
    assert.equal(c.details?.latestVersion, '2');
    rmSync(hangMarker);
    const again = update('2');
    await q.enqueue(again);
    assert.equal(await finished(again.taskId), 'done', JSON.stringify(await outcomeOf(again.taskId).catch(() => undefined)));
    assert.deepEqual((await outcomeOf(again.taskId)).steps.map((s) => s.name), ['record', 'pull', 'up', 'health']);

    assert.deepEqual(readdirSync(workDir), [], 'no step directory is left under OPS_WORK_DIR');
    assert.equal(worker.exitCode, null, 'the ops worker still runs');
  });
});

/**
 * Real processes for the fault tests, each stopped by its PID: a redis-server that can be killed with SIGKILL and
 * restarted on the same port with the same append-only file, and worker processes that can be killed and
 * replaced by a new incarnation.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../../src/embedded/redis-server.ts';
import { createRedis } from '../../../src/shared/redis.ts';
import { keys } from '../../../src/shared/keys.ts';
import { waitFor } from '../../support/services.ts';
import { boundToParent } from '../../../src/embedded/bound-child.ts';

/** Durable as the issue asks: every write is fsynced before Redis answers, so a SIGKILL loses nothing acknowledged. */
const DURABLE_ARGS = ['--appendfsync', 'always'];

export interface CrashableRedis {
  readonly url: string;
  readonly port: number;
  pid(): number;
  /** SIGKILL, then wait for the exit. */
  kill9(): Promise<void>;
  /** Starts redis-server again on the same port and directory (it replays its append-only file). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startCrashableRedis(dir: string, port: number): Promise<CrashableRedis> {
  let server: EmbeddedRedis = await startEmbeddedRedis({ dir, port, extraArgs: DURABLE_ARGS });
  return {
    url: server.url,
    port,
    pid: () => server.pid,
    kill9: () => server.kill(),
    restart: async () => {
      // The port can linger for a moment after the kill; retry the start until the deadline.
      server = await waitFor(async () => startEmbeddedRedis({ dir, port, extraArgs: DURABLE_ARGS, startTimeoutMs: 15_000 }),
        { timeoutMs: 30_000, intervalMs: 200, what: `redis-server restarting on port ${port}` });
    },
    stop: () => server.stop(),
  };
}

export interface WorkerProcess {
  readonly workerId: string;
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
}

const WORKER_MAIN = 'src/execution-plane/main.ts';

/** Spawns `node --import tsx src/execution-plane/main.ts` with only the given environment (plus PATH and HOME). */
export function spawnWorker(env: Record<string, string>, workerId: string): WorkerProcess {
  const child = spawn(...boundToParent(process.execPath, ['--import', 'tsx', WORKER_MAIN]), {
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', NODE_NO_WARNINGS: '1', WORKER_HTTP_PORT: '0', ...env, WORKER_ID: workerId },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (d: Buffer) => { out = (out + d.toString()).slice(-2_000_000); };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return { workerId, child, exited, output: () => out };
}

export const isAlive = (p: WorkerProcess) => p.child.exitCode === null && p.child.signalCode === null;

export async function kill9(p: WorkerProcess): Promise<void> {
  if (!isAlive(p)) return;
  p.child.kill('SIGKILL');
  await p.exited;
}

/** SIGTERM (drain), SIGKILL after `graceMs`. */
export async function stopWorker(p: WorkerProcess, graceMs = 10_000): Promise<void> {
  if (!isAlive(p)) return;
  p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(t);
}

/**
 * A worker counts as started once its heartbeat key exists (configuration parsed, Redis reached, browser up).
 * 180 s: three workers launching Chromium at once on a busy 2-core machine (load ≈ 30) missed 60 s.
 */
export async function waitForHeartbeat(redisUrl: string, p: WorkerProcess, timeoutMs = 180_000): Promise<void> {
  const redis = createRedis(redisUrl, { maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  try {
    await waitFor(async () => {
      if (!isAlive(p)) throw new Error(`worker ${p.workerId} exited: ${p.output().slice(-1500)}`);
      return (await redis.exists(keys.workerHeartbeat(p.workerId))) === 1;
    }, { timeoutMs, intervalMs: 100, what: `heartbeat of ${p.workerId}` });
  } finally {
    redis.disconnect();
  }
}

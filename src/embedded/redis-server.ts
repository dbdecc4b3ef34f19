/**
 * Starts the system's `redis-server` as a child process on 127.0.0.1 with an append-only file in `dir`.
 * Used by `sri up` and by the tests. The caller owns the process and stops it with `stop()` (by PID).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createConnection } from 'node:net';
import { SriError } from '../shared/errors.ts';
import { boundToParent } from './bound-child.ts';

export interface EmbeddedRedis {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly process: ChildProcess;
  /** SIGTERM (Redis saves its AOF), then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL, for crash tests. */
  kill(): Promise<void>;
}

export function redisServerBinary(): string {
  return process.env['REDIS_SERVER_BIN'] ?? 'redis-server';
}

export async function startEmbeddedRedis(opts: { dir: string; port: number; extraArgs?: string[]; startTimeoutMs?: number }): Promise<EmbeddedRedis> {
  mkdirSync(opts.dir, { recursive: true });
  const args = [
    // appendfsync always: every acknowledged write is on disk before the reply, so a kill -9 of redis-server
    // loses no job a producer or the queue was told is stored (docs/queue.md "Durability").
    '--port', String(opts.port), '--bind', '127.0.0.1', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', opts.dir,
    '--save', '', '--protected-mode', 'yes', ...(opts.extraArgs ?? []),
  ];
  // Bound to this process: a `sri up` or test killed with SIGKILL does not leave redis-server running.
  const child = spawn(...boundToParent(redisServerBinary(), args), { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000); });
  child.stderr?.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));

  const deadline = Date.now() + (opts.startTimeoutMs ?? 10_000);
  for (;;) {
    const err = await Promise.race([
      spawnError,
      exited.then((code) => new Error(`redis-server exited with code ${code}: ${output.trim().split('\n').slice(-3).join(' | ')}`)),
      canConnect(opts.port).then((ok) => (ok ? null : undefined)),
    ]);
    if (err === null) break;
    if (err instanceof Error) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new SriError('DEPENDENCY_MISSING', 'redis-server is not installed. On Debian/Ubuntu: apt-get install -y redis-server; on macOS: brew install redis. Or set REDIS_URL to an existing Redis.');
      }
      throw err;
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not accept connections on 127.0.0.1:${opts.port} within ${opts.startTimeoutMs ?? 10_000} ms`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  const stop = async (graceMs = 5000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(t);
  };
  return {
    url: `redis://127.0.0.1:${opts.port}`,
    port: opts.port,
    pid: child.pid!,
    process: child,
    stop,
    kill: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ port, host: '127.0.0.1' });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

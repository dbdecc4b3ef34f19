/**
 * Real services for tests: a redis-server child on a random port, an s3rver on a random port, in temp dirs.
 * Each test suite starts what it needs and stops it (by PID) in `after`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../src/embedded/redis-server.ts';
import { startEmbeddedS3, type EmbeddedS3 } from '../../src/embedded/s3-server.ts';
import { freePort } from '../../src/embedded/ports.ts';

export function tempDir(prefix = 'sri-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export async function startTestRedis(): Promise<EmbeddedRedis & { dir: string }> {
  const dir = tempDir('sri-redis-');
  const r = await startEmbeddedRedis({ dir: dir.path, port: await freePort() });
  return { ...r, dir: dir.path, stop: async (g?: number) => { await r.stop(g); dir.remove(); } };
}

export async function startTestS3(buckets = ['sri-scripts', 'sri-results']): Promise<EmbeddedS3> {
  const dir = tempDir('sri-s3-');
  const s = await startEmbeddedS3({ directory: dir.path, port: await freePort(), buckets });
  return { ...s, close: async () => { await s.close(); dir.remove(); } };
}

/** Polls `check` until it returns a truthy value or the timeout passes (no fixed sleeps in tests). */
export async function waitFor<T>(check: () => Promise<T> | T, opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {}): Promise<NonNullable<T>> {
  // Generous by default: a condition that holds returns at once; a loaded machine (the suite must pass with both
  // cores busy) only makes it hold later.
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${opts.what ?? 'condition'}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}

/** The JWT secret every test API signs with. */
export const TEST_JWT_SECRET = 'test-jwt-secret-0123456789-abcdefghijklmnop';
export const TEST_SIGNING_SECRET = 'test-signing-secret-0123456789-abcdefghij';

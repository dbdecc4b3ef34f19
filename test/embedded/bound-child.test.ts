/**
 * A process killed with SIGKILL runs no clean-up, yet what it started must not stay behind: a test file ended by its
 * runner once left its redis-server running. A child process starts the embedded redis-server and is then killed
 * with SIGKILL; the kernel must end redis-server too.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { tempDir, waitFor } from '../support/services.ts';

const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

describe('children bound to their parent', { skip: process.platform !== 'linux' && 'parent-death signals are a Linux feature' }, () => {
  it('ends the embedded redis-server when the process that started it is killed with SIGKILL', async () => {
    const dir = tempDir('sri-bound-');
    const code = `
      import { startEmbeddedRedis } from './src/embedded/redis-server.ts';
      import { freePort } from './src/embedded/ports.ts';
      const r = await startEmbeddedRedis({ dir: ${JSON.stringify(dir.path)}, port: await freePort() });
      console.log(r.pid);
      setInterval(() => {}, 1000);`;
    const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    let redisPid = 0;
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: parent.stdout! }).once('line', resolve);
        parent.once('exit', (c) => reject(new Error(`the parent exited (${c}) before starting redis-server`)));
      });
      redisPid = Number(line);
      assert.ok(redisPid > 0 && alive(redisPid), 'redis-server runs');
      parent.kill('SIGKILL');
      await waitFor(() => !alive(redisPid), { timeoutMs: 30_000, what: `redis-server (pid ${redisPid}) to exit after its parent was killed` });
    } finally {
      parent.kill('SIGKILL');
      if (redisPid && alive(redisPid)) process.kill(redisPid, 'SIGKILL');
      dir.remove();
    }
  });
});

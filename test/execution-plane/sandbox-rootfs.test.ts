/**
 * What the bubblewrap sandbox's filesystem holds of the host (src/execution-plane/script/sandbox/process.ts): /usr
 * read-only, and the node binary running the worker — under npm's scripts that is the project's own Node 24,
 * node_modules/node/bin/node, outside /usr — as that one file, read-only: nothing else of the project.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHILD_ENV, childCommand, type SandboxLimits } from '../../src/execution-plane/script/sandbox/process.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const LIMITS: SandboxLimits = { cpuSeconds: 10, memoryMb: 128 };
const NODE = realpathSync(process.execPath);

/** The sandbox's bwrap command with a shell in place of node, to look around inside it. */
function shellInSandbox(script: string): { status: number | null; stdout: string; stderr: string } {
  const { file, args } = childCommand('bwrap', LIMITS, '');
  const nodeAt = args.lastIndexOf(NODE);
  assert.equal(args[nodeAt - 1], '--', 'node follows bwrap\'s own arguments');
  const r = spawnSync(file, [...args.slice(0, nodeAt), '/usr/bin/sh', '-c', script], { env: CHILD_ENV, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('bubblewrap sandbox filesystem', () => {
  it('runs this process\'s own node, with the permission flag that Node version takes', () => {
    const { file, args } = childCommand('bwrap', LIMITS, 'process.stdout.write(process.version)');
    const r = spawnSync(file, args, { env: CHILD_ENV, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, process.version);
    assert.ok(args.includes(Number(process.versions.node.split('.')[0]) >= 23 ? '--permission' : '--experimental-permission'));
  });

  it('holds the node binary as one read-only file and nothing else of the project', () => {
    // Every directory from / down to the binary, when it is outside /usr: each must hold only the next step.
    const chain: string[] = [];
    for (let d = dirname(NODE); !NODE.startsWith('/usr/') && d !== '/'; d = dirname(d)) chain.unshift(d);
    const r = shellInSandbox([
      ...chain.map((d) => `echo "== ${d}"; ls -A ${JSON.stringify(d)}`),
      'echo ---',
      `test -e ${JSON.stringify(resolve(ROOT, 'package.json'))} && echo package.json visible`,
      `test -e ${JSON.stringify(resolve(ROOT, 'src'))} && echo src visible`,
      `test -e ${JSON.stringify(resolve(ROOT, 'node_modules', 'fastify'))} && echo node_modules visible`,
      `test -w ${JSON.stringify(NODE)} && echo node writable`,
      `touch ${JSON.stringify(NODE)} 2>/dev/null && echo node touched`,
      `test -x ${JSON.stringify(NODE)} && echo done`,
    ].join('; '));
    assert.equal(r.status, 0, r.stderr);
    const [listing, rest] = r.stdout.split('---\n') as [string, string];
    for (const d of chain) {
      const next = (chain[chain.indexOf(d) + 1] ?? NODE).split('/').at(-1);
      const seen = new RegExp(`== ${d.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n([^=]*)`).exec(listing)?.[1]?.trim().split('\n');
      assert.deepEqual(seen, [next], `${d} holds only ${next} in the sandbox`);
    }
    assert.equal(rest.trim(), 'done', 'no project file visible, the binary there and not writable');
  });
});

/**
 * The write-execute executor of the operations worker (src/ops-worker/executor.ts): safety headers, set -u and
 * pipefail, secrets on stdin then EOF, redaction, no secret left on disk, the environment allowlist, and a timeout
 * that kills the whole process group.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SAFETY_HEADER, StepExecutor } from '../../src/ops-worker/executor.ts';

const SECRET = 'tok-3f9a"quoted\\value-SECRET';

async function listAll(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...await listAll(p));
  }
  return out;
}

async function waitFor(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

/** Running, and not a zombie (a zombie still answers signal 0). */
const alive = (pid: number) => {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

describe('ops step executor (write-execute)', () => {
  let workDir: string;
  let exec: StepExecutor;
  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'sri-ops-exec-'));
    exec = new StepExecutor({ workDir: join(workDir, 'steps'), baseEnv: { PATH: process.env['PATH'], HOME: '/tmp/home-x', REDIS_URL: 'redis://:pw@x', AWS_SECRET: 'nope' } });
  });
  after(async () => { await rm(workDir, { recursive: true, force: true }); });

  it('writes a private 0700 script that starts with the safety headers, runs it and removes it', async () => {
    const r = await exec.run({
      name: 'self', timeoutMs: 30_000,
      body: 'printf "%s\\n" "$0"; stat -c %a "$0"; stat -c %a "$(dirname "$0")"; head -c 200 "$0" | base64 -w0; echo',
    });
    assert.equal(r.ok, true, r.outputTail.join('\n'));
    const [path, fileMode, dirMode, head] = r.output;
    assert.equal(fileMode, '700');
    assert.equal(dirMode, '700');
    assert.ok(Buffer.from(head!, 'base64').toString('utf8').startsWith(SAFETY_HEADER));
    assert.equal(SAFETY_HEADER, '#!/bin/bash\nset -euo pipefail\n');
    await assert.rejects(stat(path!), /ENOENT/);
    assert.deepEqual(await listAll(join(workDir, 'steps')), []);
  });

  it('fails a step that uses an unset variable (set -u)', async () => {
    const r = await exec.run({ name: 'unset', timeoutMs: 30_000, body: 'echo "value: $NOT_SET_ANYWHERE"\necho after' });
    assert.equal(r.ok, false);
    assert.notEqual(r.exitCode, 0);
    assert.ok(!r.output.includes('after'));
    assert.match(r.output.join('\n'), /NOT_SET_ANYWHERE: unbound variable/);
  });

  it('fails a step whose pipe has a failing command (pipefail) and stops at the first failure (set -e)', async () => {
    const r = await exec.run({ name: 'pipe', timeoutMs: 30_000, body: 'false | cat\necho after' });
    assert.equal(r.ok, false);
    assert.equal(r.exitCode, 1);
    assert.ok(!r.output.includes('after'));
  });

  it('decides success by the exit code', async () => {
    assert.equal((await exec.run({ name: 'ok', timeoutMs: 30_000, body: 'echo fine >&2' })).ok, true);
    const r = await exec.run({ name: 'code', timeoutMs: 30_000, body: 'exit 7' });
    assert.equal(r.ok, false);
    assert.equal(r.exitCode, 7);
  });

  it('hands the secrets as JSON on stdin and closes it: a second read gets EOF', async () => {
    const r = await exec.run({
      name: 'stdin', timeoutMs: 30_000, secrets: { registryToken: SECRET },
      body: [
        'first=$(cat)',
        'if [ "${#first}" -gt 0 ]; then echo "first read: ${#first} bytes"; fi',
        'second=$(cat)',
        'echo "second read: ${#second} bytes"',
        // The secret itself printed, to see it redacted.
        'printf "%s\\n" "$first"',
      ].join('\n'),
    });
    assert.equal(r.ok, true, r.outputTail.join('\n'));
    assert.match(r.output[0]!, /^first read: \d+ bytes$/);
    assert.equal(r.output[1], 'second read: 0 bytes');
    // JSON of the secret, with the value replaced: the escaped form is redacted too.
    assert.equal(r.output[2], '{"registryToken":"***"}');
  });

  it('keeps every secret out of the log lines and off the file system', async () => {
    const lines: string[] = [];
    const r = await exec.run({
      name: 'leak', timeoutMs: 30_000, secrets: { a: SECRET, b: 'second-secret-value' },
      onLine: (l) => lines.push(l),
      body: [
        // Node stands in for jq: the value is decoded from the JSON, printed raw to both streams.
        `tok=$("${process.execPath}" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.parse(s).a))')`,
        'echo "token is $tok"',
        'echo "again $tok and second-secret-value" >&2',
        'echo "$tok" > ./copy-in-step-dir',
      ].join('\n'),
    });
    assert.equal(r.ok, true, r.outputTail.join('\n'));
    const all = [...lines, ...r.output, ...r.outputTail].join('\n');
    assert.ok(!all.includes(SECRET) && !all.includes('second-secret-value'), all);
    assert.ok(lines.includes('token is ***'));
    assert.ok(lines.includes('again *** and ***'));
    for (const p of await listAll(workDir)) {
      if ((await stat(p)).isFile()) assert.ok(!(await readFile(p, 'utf8')).includes(SECRET), p);
    }
    assert.deepEqual(await listAll(join(workDir, 'steps')), []);
  });

  it('passes only the allowlisted environment and the step\'s own variables', async () => {
    const r = await exec.run({ name: 'env', timeoutMs: 30_000, env: { COMPOSE_PROJECT_NAME: 'sri' }, body: 'env | cut -d= -f1 | sort' });
    assert.equal(r.ok, true);
    const names = r.output.filter((n) => !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(n));
    assert.deepEqual(names, ['COMPOSE_PROJECT_NAME', 'HOME', 'PATH']);
  });

  it('kills the whole process group on timeout and still removes the script', async () => {
    const r = await exec.run({
      name: 'slow', timeoutMs: 1500,
      body: 'sleep 300 &\necho "child $!"\necho "self $$"\nsleep 300',
    });
    assert.equal(r.ok, false);
    assert.equal(r.timedOut, true);
    const childPid = Number(/^child (\d+)$/.exec(r.output.find((l) => l.startsWith('child ')) ?? '')?.[1]);
    const selfPid = Number(/^self (\d+)$/.exec(r.output.find((l) => l.startsWith('self ')) ?? '')?.[1]);
    assert.ok(childPid > 0 && selfPid > 0);
    assert.ok(await waitFor(() => !alive(childPid) && !alive(selfPid), 30_000), 'the background child survived the timeout');
    assert.deepEqual(await listAll(join(workDir, 'steps')), []);
  });

  it('kills the group when the caller aborts', async () => {
    const ac = new AbortController();
    const p = exec.run({ name: 'abort', timeoutMs: 60_000, signal: ac.signal, body: 'echo started\nsleep 300', onLine: (l) => { if (l === 'started') ac.abort(); } });
    const r = await p;
    assert.equal(r.aborted, true);
    assert.equal(r.ok, false);
  });
});

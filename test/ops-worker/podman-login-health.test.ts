/**
 * The ops worker on podman (test/support/podman-ops.ts) against a registry that asks for a login, with a second
 * service that has no container health check, only a readiness URL:
 *
 * - Registry login: a wrong OPS_REGISTRY_TOKEN_FILE fails the update at its `login` step (nothing else ran, nothing
 *   changed); the right one logs in (`docker login --password-stdin` through podman's /auth), pulls and updates. The
 *   token is in no process's command line or environment while it runs (/proc scanned throughout), nor in the task's
 *   live log, its audit record, the ops worker's own log, or OPS_WORK_DIR afterwards. system.check reads the tags
 *   with it.
 * - Readiness URLs (OPS_HEALTH_URLS): the `api` service has no HEALTHCHECK; a version that serves /ready updates, one
 *   that does not fails at `health-url` and is rolled back (only the updated service: `services: ["api"]`).
 * - No update while a rollback runs: the rollback's readiness URL is held (a gate in this test answers 503) — the
 *   task is visibly in its rollback — and a new update is refused with 409 OPS_BUSY; once the gate opens the rollback
 *   ends healthy and an update is accepted.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { keys } from '../../src/shared/keys.ts';
import { createRedis } from '../../src/shared/redis.ts';
import { PodmanOpsStack, podmanSkip, operatorApi } from '../support/podman-ops.ts';
import { waitFor } from '../support/services.ts';

const OPERATOR_TOKEN = randomBytes(24).toString('hex');
const REGISTRY_TOKEN = `regtok-${randomBytes(16).toString('hex')}`;
const WRONG_TOKEN = `wrongtok-${randomBytes(16).toString('hex')}`;

/** Every file under `dir` whose content contains `needle`. */
function filesContaining(dir: string, needle: string): string[] {
  if (!existsSync(dir)) return [];
  const hits: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = statSync(path);
    if (st.isDirectory()) hits.push(...filesContaining(path, needle));
    else if (st.isFile() && readFileSync(path).includes(needle)) hits.push(path);
  }
  return hits;
}

/**
 * Reads every process's command line and environment again and again until stopped (each round every process in
 * /proc, then 5 ms of rest): which ones held `needle`, and whether a `docker login` was seen at all (so the scan saw
 * the step it is about).
 *
 * A round reads each file through a descriptor kept open from round to round (`pread` from 0) where that reads what
 * a fresh open would: opening /proc/<pid>/… was most of a round's CPU, and the scan runs beside podman on the same
 * 2 cores.
 *   - cmdline, always kept: each read looks up the process and its memory as they are now (after an exec too). Once
 *     the process is gone the read fails (ESRCH), also when its pid was taken again: then the path is opened anew.
 *   - environ, kept only for a process that has exec'd (no PF_FORKNOEXEC in /proc/<pid>/stat, read before the open,
 *     and the same start time read after it): a kept descriptor reads the memory the process had when it was
 *     opened, whose users drop to 0 when the process execs or exits, and the read then returns nothing — the path
 *     is opened anew. A vfork child before its exec shares its parent's memory, which outlives the child's exec:
 *     such a process (forked, not exec'd) is read by path every round. The descriptor is also opened anew whenever
 *     the command line changed or its own descriptor was opened anew. Not covered, as no program here does it: a
 *     process whose memory a live non-thread clone(CLONE_VM) child (not vfork) shares, that then execs the same
 *     command line with another environment.
 *   - A kernel thread (PF_KTHREAD) has no environment to read (the read fails) while its command line is empty: it
 *     gets one only by exec'ing a usermode helper, whose command line is not empty.
 *   - Anything not kept is read by path each round, as before.
 */
function scanProcesses(needle: string) {
  const leaks = new Set<string>();
  const token = Buffer.from(needle);
  const LOGIN = Buffer.from('docker\0login\0');
  const STDIN = Buffer.from('--password-stdin');
  const PF_FORKNOEXEC = 0x40;
  const PF_KTHREAD = 0x200000;
  const MAX_HELD = 2000;
  let buf = Buffer.alloc(256 * 1024);
  let sawLogin = false;
  let scans = 0;
  let running = true;
  /** Per pid: its kept descriptors, its last command line, what its stat said, and rounds until it is read again. */
  interface Proc { cmd?: number; env?: number; cmdline?: Buffer; kthread?: boolean; lookIn: number }
  const procs = new Map<string, Proc>();
  let kept = 0;
  const close = (fd: number | undefined) => {
    if (fd === undefined) return;
    kept--;
    try { closeSync(fd); } catch { /* closed */ }
  };
  const keep = (path: string) => {
    const fd = openSync(path, 'r');
    kept++;
    return fd;
  };
  /** The whole file through `fd` from its start (procfs hands it to one read with room for it). */
  const readFd = (fd: number): Buffer => {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, 0);
      if (n < buf.length) return buf.subarray(0, n);
      buf = Buffer.alloc(buf.length * 2);
    }
  };
  const readPath = (path: string): Buffer => {
    const fd = openSync(path, 'r');
    try { return readFd(fd); } finally { closeSync(fd); }
  };
  /** Flags (field 9 of /proc/<pid>/stat) and start time (field 22). */
  const statOf = (pid: string) => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { flags: Number(f[6]), start: f[19] };
  };
  /** The command line through its kept descriptor; `reopened` when the process that descriptor named is gone. */
  const cmdlineOf = (pid: string, p: Proc): { cmdline: Buffer; reopened: boolean } => {
    if (p.cmd !== undefined) {
      try {
        return { cmdline: Buffer.from(readFd(p.cmd)), reopened: false };
      } catch {
        close(p.cmd);
        p.cmd = undefined;
      }
    }
    if (kept >= MAX_HELD) return { cmdline: Buffer.from(readPath(`/proc/${pid}/cmdline`)), reopened: true };
    p.cmd = keep(`/proc/${pid}/cmdline`);
    return { cmdline: Buffer.from(readFd(p.cmd)), reopened: true };
  };
  /** The environment (a view of `buf`), or undefined for a kernel thread that has none. */
  const environOf = (pid: string, p: Proc, changed: boolean): Buffer | undefined => {
    if (p.env !== undefined && !changed) {
      try {
        const env = readFd(p.env);
        if (env.length > 0) return env;
      } catch { /* opened anew below */ }
    }
    close(p.env);
    p.env = undefined;
    // Its stat is read when its command line changed, and every 50 rounds (only whether to keep a descriptor
    // depends on it: a process that has exec'd since is read by path meanwhile).
    if (changed || --p.lookIn <= 0) {
      const before = statOf(pid);
      p.kthread = (before.flags & PF_KTHREAD) !== 0;
      p.lookIn = 50;
      if ((before.flags & (PF_FORKNOEXEC | PF_KTHREAD)) === 0 && kept < MAX_HELD) {
        const fd = keep(`/proc/${pid}/environ`);
        let same = false;
        try { same = statOf(pid).start === before.start; } catch { /* gone */ }
        if (same) {
          p.env = fd;
          return readFd(fd);
        }
        close(fd);
      }
    }
    if (p.kthread && p.cmdline?.length === 0) return undefined;
    return readPath(`/proc/${pid}/environ`);
  };
  const loop = (async () => {
    while (running) {
      const seen = new Set<string>();
      for (const pid of readdirSync('/proc')) {
        const c = pid.charCodeAt(0);
        if (c < 48 || c > 57) continue;
        seen.add(pid);
        let p = procs.get(pid);
        if (!p) procs.set(pid, p = { lookIn: 0 });
        try {
          const { cmdline, reopened } = cmdlineOf(pid, p);
          const changed = reopened || !p.cmdline?.equals(cmdline);
          p.cmdline = cmdline;
          const text = () => cmdline.toString('utf8').replaceAll('\0', ' ');
          if (cmdline.includes(LOGIN) && cmdline.includes(STDIN)) sawLogin = true;
          if (cmdline.includes(token)) leaks.add(`cmdline of ${pid}: ${text()}`);
          if (environOf(pid, p, changed)?.includes(token)) leaks.add(`environment of ${pid}: ${text()}`);
        } catch { /* gone meanwhile */ }
      }
      for (const [pid, p] of procs) {
        if (!seen.has(pid)) { close(p.cmd); close(p.env); procs.delete(pid); }
      }
      scans++;
      await new Promise((r) => setTimeout(r, 5));
    }
    for (const p of procs.values()) { close(p.cmd); close(p.env); }
  })();
  return { stop: async () => { running = false; await loop; return { leaks: [...leaks], sawLogin, scans }; } };
}

describe('ops worker on podman: registry login with a token, readiness URLs, no update during a rollback', { skip: podmanSkip() }, () => {
  let stack: PodmanOpsStack;
  let gate: Server | undefined;
  let gateOpen = false;
  let gateHits = 0;

  const { http, task, waitFinal } = operatorApi(() => stack, OPERATOR_TOKEN);
  const withAdmin = async <T>(fn: (admin: ReturnType<typeof createRedis>) => Promise<T>): Promise<T> => {
    const admin = createRedis(`redis://sri-admin:${stack.passwords.admin}@127.0.0.1:${stack.redisServer.port}`);
    try {
      return await fn(admin);
    } finally {
      admin.disconnect();
    }
  };
  /** The task's whole live log as Redis holds it. */
  const liveLog = (id: string) => withAdmin(async (admin) => (await admin.xrange(keys.opsTaskLogs(id), '-', '+')).map(([, f]) => f.join(' ')).join('\n'));
  const readyUrl = () => `api=http://127.0.0.1:${stack.apiPort}/ready`;

  before(async () => {
    // The first ops worker knows the api's readiness URL.
    stack = new PodmanOpsStack({
      operatorToken: OPERATOR_TOKEN, registryAuth: { user: 'sri-deploy', token: REGISTRY_TOKEN }, readyService: true, logName: 'api-ops-login',
      opsWorkerEnv: () => ({ OPS_HEALTH_URLS: readyUrl() }),
    });
    await stack.start();
  }, { timeout: 600_000 });

  after(async () => {
    await stack?.stop();
    await new Promise((r) => (gate ? gate.close(r) : r(undefined)));
  }, { timeout: 120_000 });

  it('the registry asks for a login, and nothing is logged in yet', async () => {
    const port = stack.registry.split(':')[1];
    assert.equal((await fetch(`http://127.0.0.1:${port}/v2/`)).status, 401);
    const basic = (pw: string) => ({ authorization: `Basic ${Buffer.from(`sri-deploy:${pw}`).toString('base64')}` });
    assert.equal((await fetch(`http://127.0.0.1:${port}/v2/`, { headers: basic(WRONG_TOKEN) })).status, 401);
    assert.equal((await fetch(`http://127.0.0.1:${port}/v2/`, { headers: basic(REGISTRY_TOKEN) })).status, 200);
    assert.deepEqual(JSON.parse(readFileSync(join(stack.opsWorkerEnv()['DOCKER_CONFIG']!, 'config.json'), 'utf8')), {});
  });

  it('a wrong token fails the update at its login step; nothing else runs, nothing changes, the token is nowhere', async () => {
    stack.setRegistryToken(WRONG_TOKEN);
    const r = await http('POST', '/api/operator/system/update', { targetVersion: '2' });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const t = await waitFinal(r.body.task.id);
    assert.equal(t.status, 'failed', JSON.stringify(t, null, 2));
    assert.equal(t.error.code, 'OPS_STEP_FAILED');
    assert.equal(t.error.step, 'login');
    assert.match(t.error.message, /Logging in to localhost:\d+ failed/);
    assert.match(t.error.outputTail.join('\n'), /401 Unauthorized/, 'the registry\'s refusal is in the failed step\'s output');
    assert.deepEqual(t.steps.map((s: any) => s.name), ['login']);
    assert.notEqual(t.steps[0].exitCode, 0);
    assert.match(t.steps[0].command, /--password-stdin/);
    assert.deepEqual(stack.serviceImages(), { web: `${stack.registry}/sri/platform:1`, api: `${stack.registry}/sri/platform:1` });
    const log = await liveLog(t.id);
    assert.match(log, /step login failed/);
    for (const [what, text] of [['the audit record', JSON.stringify(t)], ['the live log', log], ['the ops worker\'s log', stack.opsWorkerOutput()]] as const) {
      assert.ok(!text.includes(WRONG_TOKEN), `the token is in ${what}`);
    }
  });

  it('the right token: logs in on stdin, pulls and updates to 2 (api ready at its URL); the token is in no command line, environment, log, audit or work file', async () => {
    stack.setRegistryToken(REGISTRY_TOKEN);
    const scan = scanProcesses(REGISTRY_TOKEN);
    let t: any;
    try {
      const r = await http('POST', '/api/operator/system/update', { targetVersion: '2' });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      t = await waitFinal(r.body.task.id);
    } catch (e) {
      await scan.stop();
      throw e;
    }
    const scanned = await scan.stop();
    assert.equal(t.status, 'done', JSON.stringify(t, null, 2));
    assert.deepEqual(t.steps.map((s: any) => s.name), ['login', 'record', 'pull', 'up', 'health', 'health-url']);
    assert.ok(t.steps.every((s: any) => s.exitCode === 0 && s.outcome === 'ok'), JSON.stringify(t.steps, null, 2));
    assert.match(t.steps[0].outputTail.join('\n'), /Login Succeeded/);
    assert.match(t.steps.find((s: any) => s.name === 'health-url').outputTail[0], /GET http:\/\/127\.0\.0\.1:\d+\/ready → 200/);
    assert.deepEqual(stack.serviceImages(), { web: `${stack.registry}/sri/platform:2`, api: `${stack.registry}/sri/platform:2` });

    assert.ok(scanned.sawLogin, `the /proc scan saw the docker login (${scanned.scans} scans)`);
    assert.deepEqual(scanned.leaks, [], 'the token is in no process\'s command line or environment');
    const log = await liveLog(t.id);
    assert.match(log, /Login Succeeded/);
    const env = stack.opsWorkerEnv();
    for (const [what, text] of [['the audit record', JSON.stringify(t)], ['the live log', log], ['the ops worker\'s log', stack.opsWorkerOutput()]] as const) {
      assert.ok(!text.includes(REGISTRY_TOKEN), `the token is in ${what}`);
    }
    assert.deepEqual(filesContaining(env['OPS_WORK_DIR']!, REGISTRY_TOKEN), [], 'no file of OPS_WORK_DIR holds the token');
    assert.deepEqual(readdirSync(env['OPS_WORK_DIR']!), [], 'every step\'s directory is removed');
    assert.deepEqual(filesContaining(env['LOG_DIR']!, REGISTRY_TOKEN), [], 'no log file holds the token');
  });

  it('system.check reads the registry\'s tags with the token', async () => {
    const r = await http('POST', '/api/operator/system/check');
    assert.equal(r.status, 202);
    const t = await waitFinal(r.body.task.id);
    assert.equal(t.status, 'done', JSON.stringify(t, null, 2));
    assert.equal(t.details.runningVersion, '2');
    assert.deepEqual(t.details.availableVersions, ['1', '2', '3']);
    assert.ok(!JSON.stringify(t).includes(REGISTRY_TOKEN));
  });

  it('a version of api that does not serve /ready fails at health-url and is rolled back', async () => {
    const r = await http('POST', '/api/operator/system/update', { targetVersion: '3', services: ['api'] });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const t = await waitFinal(r.body.task.id);
    assert.equal(t.status, 'failed', JSON.stringify(t, null, 2));
    assert.equal(t.error.code, 'OPS_STEP_FAILED');
    assert.equal(t.error.step, 'health-url');
    assert.match(t.error.outputTail.join('\n'), /api: GET http:\/\/127\.0\.0\.1:\d+\/ready → 404/);
    assert.deepEqual(t.steps.map((s: any) => s.name), ['login', 'record', 'pull', 'up', 'health', 'health-url', 'rollback-retag', 'rollback-up', 'rollback-health', 'rollback-health-url']);
    assert.equal(t.steps.find((s: any) => s.name === 'health').outcome, 'ok', 'the container counts as running: it has no health check');
    assert.equal(t.details.rolledBack, true);
    assert.equal(t.details.rollbackHealthy, true);
    assert.deepEqual(stack.serviceImages(), { web: `${stack.registry}/sri/platform:2`, api: `${stack.registry}/sri/platform:2` }, 'api back to 2, web never touched');
    assert.equal((await fetch(`http://127.0.0.1:${stack.apiPort}/ready`)).status, 200);
  });

  it('refuses an update while the previous one rolls back (409 OPS_BUSY), accepts one after', async () => {
    // web's readiness is a gate here: 503 until the test opens it. The update is to a version the registry does not
    // have: it fails before any readiness check — at its pull, or (docker-compose 1.29 on podman reports the pull of
    // a missing tag done) at its up — so the gate is asked only by the rollback's.
    gate = createServer((_req, res) => {
      gateHits++;
      res.writeHead(gateOpen ? 200 : 503).end(gateOpen ? 'ready' : 'not yet');
    });
    await new Promise<void>((r) => gate!.listen(0, '127.0.0.1', r));
    const gatePort = (gate.address() as { port: number }).port;
    await stack.stopChild(stack.opsWorker);
    stack.startOpsWorker({ OPS_HEALTH_URLS: `${readyUrl()},web=http://127.0.0.1:${gatePort}/ready`, OPS_HEALTH_TIMEOUT_MS: '120000' });
    const r = await http('POST', '/api/operator/system/update', { targetVersion: '4' });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const id = r.body.task.id as string;

    // In the rollback: its containers are up and healthy, its readiness check waits at the gate.
    await waitFor(async () => (gateHits > 0 ? true : undefined), { timeoutMs: 300_000, intervalMs: 200, what: 'the rollback to ask the gate' });
    // The live log is written in batches: it may trail the gate by a moment.
    const log = await waitFor(async () => {
      const l = await liveLog(id);
      return l.includes('step rollback-health ok') ? l : undefined;
    }, { timeoutMs: 60_000, intervalMs: 250, what: 'the rollback\'s health step in the live log' });
    assert.match(log, /update to 4 failed at (pull|up); rolling back to 2/);
    assert.ok(!log.includes(`127.0.0.1:${gatePort}/ready →`), 'the rollback is still waiting for its readiness URL');
    assert.equal((await task(id)).status, 'running');

    const refused = await http('POST', '/api/operator/system/update', { targetVersion: '2' });
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, 'OPS_BUSY');
    assert.match(refused.body.error.message, new RegExp(`${id}.*rolling back`));
    assert.match(refused.body.error.message, /wait for its outcome/);
    assert.equal((await task(id)).status, 'running', 'still rolling back: the refusal changed nothing');
    const check = await http('POST', '/api/operator/system/check');
    assert.equal(check.status, 202, 'a check is never refused: it waits in the queue');

    gateOpen = true;
    const t = await waitFinal(id);
    assert.equal(t.status, 'failed', JSON.stringify(t, null, 2));
    assert.ok(['pull', 'up'].includes(t.error.step), t.error.step);
    assert.match(t.error.outputTail.join('\n'), /platform:4/);
    assert.equal(t.details.rollbackHealthy, true, JSON.stringify(t.steps, null, 2));
    assert.equal(t.steps.at(-1).name, 'rollback-health-url');
    assert.equal(t.steps.at(-1).outcome, 'ok');
    assert.deepEqual(stack.serviceImages(), { web: `${stack.registry}/sri/platform:2`, api: `${stack.registry}/sri/platform:2` });
    assert.equal((await waitFinal(check.body.task.id)).status, 'done');

    const accepted = await http('POST', '/api/operator/system/update', { targetVersion: '1' });
    assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
    const t2 = await waitFinal(accepted.body.task.id);
    assert.equal(t2.status, 'done', JSON.stringify(t2, null, 2));
    assert.deepEqual(stack.serviceImages(), { web: `${stack.registry}/sri/platform:1`, api: `${stack.registry}/sri/platform:1` });
  });
});

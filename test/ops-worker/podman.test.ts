/**
 * The privileged operations worker on a real container engine (docs/operations.md): podman serving the Docker API on
 * a socket of its own, docker-compose and the docker CLI against it, a local docker-registry, a Redis loaded with
 * deploy/redis/users.acl, the API on the sri-api user with an OPERATOR_TOKEN, and `sri ops-worker` as a process of
 * its own on the sri-ops user.
 *
 * - A small service (busybox httpd with a health check, base image imported from busybox-static) is published as
 *   versions 1, 2 and 3 (3 fails its health check); version 1 runs under compose.
 * - system.check sees 1 running and 3 offered; system.update to 2 ends healthy with its audit record (who, steps,
 *   exit codes); a second update meanwhile is refused with 409 OPS_BUSY; the live log streams over SSE.
 * - system.update to 3 fails its health check and is rolled back to 2, healthy again.
 * - The ops worker killed with SIGKILL during an update: the task is reported interrupted, never run again.
 * - Without podman: the Redis ACL part still runs (a browser worker's user cannot push to sri:ops:jobs), the rest is
 *   skipped naming the missing package.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadApiConfig } from '../../src/control-plane/config.ts';
import { migrate, openDatabase, type Database } from '../../src/control-plane/db/index.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { freePort } from '../../src/embedded/ports.ts';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../src/embedded/redis-server.ts';
import { workerAclRules } from '../../src/shared/enrolment.ts';
import { keys } from '../../src/shared/keys.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { TEST_JWT_SECRET } from '../support/api.ts';
import { startTestS3, tempDir, TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import { writeUsersAcl } from '../support/acl.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const USERS = ['admin', 'api', 'worker', 'enrol', 'ops'] as const;
const OPERATOR_TOKEN = randomBytes(24).toString('hex');
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** What podman needs here, by Debian package; the first missing one is named in the skip message. */
function missingPackage(): string | undefined {
  const need: [string, () => boolean][] = [
    ['podman', () => has('podman')], ['runc', () => has('runc')], ['docker-compose', () => has('docker-compose')],
    ['docker-registry', () => has('docker-registry')], ['busybox-static', () => existsSync('/bin/busybox')],
    ['docker CLI (docker-cli / docker.io)', () => has('docker')],
  ];
  return need.find(([, ok]) => !ok())?.[0];
}

interface Env { [k: string]: string }

describe('ops worker: Redis ACL of its queue (deploy/redis/users.acl)', () => {
  const dir = tempDir('sri-ops-acl-');
  const passwords = Object.fromEntries(USERS.map((u) => [u, randomBytes(16).toString('hex')])) as Record<(typeof USERS)[number], string>;
  let redisServer: EmbeddedRedis;
  const opened: Redis[] = [];
  const connect = (user: string, password: string) => {
    const r = createRedis(`redis://${user}:${password}@127.0.0.1:${redisServer.port}`, { maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => {});
    opened.push(r);
    return r;
  };

  before(async () => {
    const aclFile = writeUsersAcl(dir.path, passwords).path;
    redisServer = await startEmbeddedRedis({ dir: join(dir.path, 'redis'), port: await freePort(), extraArgs: ['--aclfile', aclFile] });
  });
  after(async () => {
    for (const r of opened) r.disconnect();
    await redisServer?.stop();
    dir.remove();
  });

  it('refuses sri:ops:* to a browser worker\'s Redis user, shared or enrolled', async () => {
    const worker = connect('sri-worker', passwords.worker);
    await assert.rejects(worker.lpush(keys.opsJobs, '{"taskId":"x"}'), /NOPERM/);
    await assert.rejects(worker.hset(keys.opsLease, 'token', 'x'), /NOPERM/);
    await assert.rejects(worker.publish(keys.opsDone, '{}'), /NOPERM/);
    // An enrolled worker's own user (the rules the API gives it) has no sri:ops:* either.
    const admin = connect('sri-admin', passwords.admin);
    const enrolledPw = randomBytes(16).toString('hex');
    await admin.call('ACL', 'SETUSER', 'worker-test', 'on', `>${enrolledPw}`, ...workerAclRules('worker-test'));
    const enrolled = connect('worker-test', enrolledPw);
    await assert.rejects(enrolled.lpush(keys.opsJobs, '{"taskId":"x"}'), /NOPERM/);
  });

  it('lets the ops worker\'s user reach only sri:ops:*', async () => {
    const ops = connect('sri-ops', passwords.ops);
    assert.equal(await ops.hset(keys.opsStatuses, 'x', 'queued'), 1);
    await assert.rejects(ops.lpush(keys.orgJobs('org-1'), '{}'), /NOPERM/);
    await assert.rejects(ops.get(keys.session('o', 'u', 'p')), /NOPERM/);
    await assert.rejects(ops.lpush(keys.opsJobs, '{}'), /NOPERM/, 'the ops worker only takes tasks; the API enqueues them');
    // The API's user enqueues.
    const api = connect('sri-api', passwords.api);
    assert.equal(await api.lpush(keys.opsJobs, '{}'), 1);
    await api.del(keys.opsJobs);
    // And hears the results (src/control-plane/ops/recorder.ts).
    const sub = connect('sri-api', passwords.api);
    assert.equal(await sub.subscribe(keys.opsDone), 1);
  });
});

const missing = missingPackage();
describe('ops worker on podman: system.check, update, rollback, kill -9', { skip: missing ? `podman cannot run here: install the Debian package ${missing} (apt-get install -y podman runc docker-compose docker-registry busybox-static)` : false }, () => {
  // Made in before(): a skipped suite runs no hook, so a directory made here would never be removed.
  let dir: ReturnType<typeof tempDir>;
  const passwords = Object.fromEntries(USERS.map((u) => [u, randomBytes(16).toString('hex')])) as Record<(typeof USERS)[number], string>;
  const project = `sriops${randomBytes(3).toString('hex')}`;
  const children: ChildProcess[] = [];
  let engineEnv: Env;
  let registry: string;
  let redisServer: EmbeddedRedis;
  let s3: Awaited<ReturnType<typeof startTestS3>>;
  let db: Database;
  let api: ApiHandle;
  let opsWorker: ChildProcess | undefined;
  let composeFile: string;
  let podmanReady = false;

  const run = (cmd: string, args: string[], env: Env = {}, timeoutMs = 180_000) => {
    const r = spawnSync(cmd, args, { env: { ...engineEnv, ...env }, encoding: 'utf8', timeout: timeoutMs, cwd: dir.path });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} → ${r.status}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const startChild = (cmd: string, args: string[], env: Env) => {
    const c = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
    let out = '';
    c.stdout?.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-20_000); });
    c.stderr?.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-20_000); });
    (c as ChildProcess & { output: () => string }).output = () => out;
    children.push(c);
    return c;
  };
  const stopChild = async (c: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM') => {
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill(signal);
    const timer = setTimeout(() => c.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  const runningImages = () => run('sh', ['-c', `for id in $(docker-compose -f "${composeFile}" -p ${project} ps -q); do docker inspect --format '{{.Config.Image}}' "$id"; done`], { SRI_VERSION: '1' }).trim().split('\n').filter(Boolean);

  const http = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(api.url + path, {
      method, headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() as any };
  };
  const task = async (id: string) => (await http('GET', `/api/operator/system/tasks/${id}`)).body.task;
  const waitFinal = (id: string, timeoutMs = 240_000) => waitFor(async () => {
    const t = await task(id);
    return ['done', 'failed', 'interrupted'].includes(t?.status) ? t : undefined;
  }, { timeoutMs, intervalMs: 500, what: `ops task ${id} to finish` });

  const opsWorkerEnv = (): Env => ({
    ...engineEnv,
    REDIS_URL: `redis://sri-ops:${passwords.ops}@127.0.0.1:${redisServer.port}`,
    OPS_WORKER_ID: 'ops-test', OPS_WORK_DIR: join(dir.path, 'ops-work'), OPS_COMPOSE_FILE: composeFile, OPS_COMPOSE_PROJECT: project,
    OPS_COMPOSE_COMMAND: 'docker-compose', OPS_REGISTRY: registry, OPS_REGISTRY_INSECURE: 'true', OPS_IMAGE_REPOSITORY: 'sri/platform',
    OPS_HEALTH_TIMEOUT_MS: '20000', OPS_LEASE_MS: '3000', OPS_POLL_INTERVAL_MS: '200', OPS_MIGRATE_SERVICE: 'web', OPS_MIGRATE_COMMAND: 'cat /www/version',
    LOG_DIR: join(dir.path, 'logs'), LOG_LEVEL: 'info',
  });
  const startOpsWorker = () => startChild(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/main.ts'), 'ops-worker'], opsWorkerEnv());

  before(async () => {
    dir = tempDir('sri-ops-podman-');
    const p = dir.path;
    mkdirSync(join(p, 'home'), { recursive: true });
    mkdirSync(join(p, 'docker-config'), { recursive: true });
    writeFileSync(join(p, 'docker-config/config.json'), '{}\n');
    writeFileSync(join(p, 'containers.conf'), '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n');
    writeFileSync(join(p, 'storage.conf'), `[storage]\ndriver = "vfs"\ngraphroot = "${p}/graph"\nrunroot = "${p}/run"\n`);
    const registryPort = await freePort();
    registry = `127.0.0.1:${registryPort}`;
    writeFileSync(join(p, 'registries.conf'), `[[registry]]\nlocation = "${registry}"\ninsecure = true\n`);
    writeFileSync(join(p, 'registry.yml'), `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${p}/registry-data\nhttp:\n  addr: ${registry}\n`);
    engineEnv = {
      PATH: `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`, HOME: join(p, 'home'),
      CONTAINERS_CONF: join(p, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(p, 'storage.conf'),
      CONTAINERS_REGISTRIES_CONF: join(p, 'registries.conf'), DOCKER_HOST: `unix://${p}/podman.sock`, DOCKER_CONFIG: join(p, 'docker-config'),
    };
    startChild('docker-registry', ['serve', join(p, 'registry.yml')], engineEnv);
    startChild('podman', ['system', 'service', '--time=0', `unix://${p}/podman.sock`], engineEnv);
    await waitFor(() => existsSync(join(p, 'podman.sock')) && fetch(`http://${registry}/v2/`).then((r) => r.ok, () => false), { timeoutMs: 60_000, what: 'podman socket and registry' });

    // A base image from busybox-static (no internet here), then versions 1, 2 and 3 of a service: 3 has no /www/health.
    mkdirSync(join(p, 'rootfs/bin'), { recursive: true });
    run('sh', ['-c', `cp /bin/busybox ${p}/rootfs/bin/ && cd ${p}/rootfs/bin && for a in sh httpd wget cat echo sleep; do ln -sf busybox $a; done && tar -C ${p}/rootfs -cf ${p}/busybox.tar .`]);
    run('podman', ['import', join(p, 'busybox.tar'), 'localhost/sri-ops-test-busybox:base']);
    for (const v of ['1', '2', '3']) {
      const ctx = join(p, `v${v}`);
      mkdirSync(join(ctx, 'www'), { recursive: true });
      writeFileSync(join(ctx, 'www/version'), `${v}\n`);
      if (v !== '3') writeFileSync(join(ctx, 'www/health'), 'ok\n');
      writeFileSync(join(ctx, 'Containerfile'), 'FROM localhost/sri-ops-test-busybox:base\nCOPY www /www\nCMD ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]\n');
      run('podman', ['build', '-q', '-t', `${registry}/sri/platform:${v}`, ctx]);
      run('podman', ['push', '-q', '--tls-verify=false', `${registry}/sri/platform:${v}`]);
      run('podman', ['rmi', `${registry}/sri/platform:${v}`]);
    }
    composeFile = join(p, 'compose.yml');
    writeFileSync(composeFile, `version: "3"
services:
  web:
    image: ${registry}/sri/platform:\${SRI_VERSION}
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health"]
      interval: 2s
      timeout: 2s
      retries: 2
`);
    run('docker-compose', ['-f', composeFile, '-p', project, 'pull'], { SRI_VERSION: '1' });
    run('docker-compose', ['-f', composeFile, '-p', project, 'up', '-d'], { SRI_VERSION: '1' });
    podmanReady = true;

    const aclFile = writeUsersAcl(p, passwords).path;
    [redisServer, s3, db] = await Promise.all([
      freePort().then((port) => startEmbeddedRedis({ dir: join(p, 'redis'), port, extraArgs: ['--aclfile', aclFile] })),
      startTestS3(), openDatabase({}),
    ]);
    await migrate(db);
    const config = loadApiConfig({
      JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: `redis://sri-api:${passwords.api}@127.0.0.1:${redisServer.port}`,
      S3_ENDPOINT: s3.endpoint, PORT: '0', LOG_LEVEL: 'silent', OPERATOR_TOKEN,
    });
    api = await startApi(config, { db, logger: createLogger({ name: 'api-ops', level: process.env['TEST_LOG_LEVEL'] ?? 'silent' }) });
    opsWorker = startOpsWorker();
  });

  after(async () => {
    await stopChild(opsWorker);
    await api?.close();
    await db?.close();
    if (podmanReady) {
      try { run('docker-compose', ['-f', composeFile, '-p', project, 'down', '-t', '1'], { SRI_VERSION: '1' }); } catch { /* reported by the tests */ }
    }
    for (const c of children.reverse()) await stopChild(c);
    // What podman left behind under this test's directory (conmon keeps an exec session 5 minutes after it ended)
    // and any step the SIGKILLed ops worker left running: found by the directory in their command line, killed by pid.
    for (const pid of dir ? readdirSync('/proc').filter((d) => /^\d+$/.test(d)) : []) {
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir.path)) process.kill(Number(pid), 'SIGKILL');
      } catch { /* gone, or not ours to read */ }
    }
    await Promise.all([redisServer?.stop(), s3?.close()]);
    // podman's storage holds files owned by the containers' users: removed as root like the rest.
    dir?.remove();
  });

  it('system.check: reads the running version from the containers and the offered ones from the registry', async () => {
    const r = await http('POST', '/api/operator/system/check');
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const t = await waitFinal(r.body.task.id);
    assert.equal(t.status, 'done', JSON.stringify(t));
    assert.equal(t.details.runningVersion, '1');
    assert.equal(t.details.latestVersion, '3');
    assert.equal(t.details.updateAvailable, true);
    assert.deepEqual(t.details.availableVersions, ['1', '2', '3']);
    assert.deepEqual(runningImages(), [`${registry}/sri/platform:1`], 'a check changes nothing');
  });

  it('system.update to 2: healthy, audited, a second update meanwhile refused with 409 OPS_BUSY, the log over SSE', async () => {
    const r = await http('POST', '/api/operator/system/update', { targetVersion: '2', runMigrations: true });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const id = r.body.task.id as string;
    const busy = await http('POST', '/api/operator/system/update', { targetVersion: '3' });
    assert.equal(busy.status, 409);
    assert.equal(busy.body.error.code, 'OPS_BUSY');

    const t = await waitFinal(id);
    assert.equal(t.status, 'done', JSON.stringify(t, null, 2));
    assert.deepEqual(runningImages(), [`${registry}/sri/platform:2`]);
    assert.equal(t.details.runningVersion, '1');
    assert.equal(t.details.targetVersion, '2');
    assert.match(t.requestedBy.identity, /^operator:[0-9a-f]{12}$/);
    assert.ok(!JSON.stringify(t).includes(OPERATOR_TOKEN), 'the token is not in the audit');
    assert.deepEqual(t.steps.map((s: any) => s.name), ['record', 'pull', 'up', 'health', 'migrate']);
    for (const s of t.steps) {
      assert.equal(s.exitCode, 0, JSON.stringify(s));
      assert.equal(s.outcome, 'ok');
      assert.ok(s.durationMs >= 0 && s.startedAt && s.command);
    }
    assert.ok(t.steps.find((s: any) => s.name === 'migrate').outputTail.includes('2'), 'the migration ran in the new image');
    assert.equal(t.workerId, 'ops-test');
    const list = await http('GET', '/api/operator/system/tasks');
    assert.ok(list.body.tasks.some((x: any) => x.id === id && x.status === 'done'));

    const sse = await fetch(`${api.url}/api/operator/system/tasks/${id}/logs`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, accept: 'text/event-stream' } });
    assert.equal(sse.status, 200);
    const text = await sse.text();
    assert.match(text, /event: line/);
    assert.match(text, /every service is healthy/);
    assert.match(text, /event: end/);
    assert.equal((await fetch(`${api.url}/api/operator/system/tasks/${id}`)).status, 403, 'operator only');
  });

  it('system.update to a broken 3: fails its health check and is rolled back to 2, healthy', async () => {
    const r = await http('POST', '/api/operator/system/update', { targetVersion: '3' });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const t = await waitFinal(r.body.task.id);
    assert.equal(t.status, 'failed', JSON.stringify(t, null, 2));
    assert.equal(t.error.code, 'OPS_STEP_FAILED');
    assert.equal(t.error.step, 'health');
    assert.ok(t.error.outputTail.length > 0);
    assert.equal(t.details.rolledBack, true);
    assert.equal(t.details.rollbackHealthy, true, JSON.stringify(t.steps, null, 2));
    assert.deepEqual(t.steps.map((s: any) => s.name), ['record', 'pull', 'up', 'health', 'rollback-retag', 'rollback-up', 'rollback-health']);
    assert.deepEqual(runningImages(), [`${registry}/sri/platform:2`]);
  });

  it('reports an update interrupted when its ops worker is killed with SIGKILL, and never runs it again', async () => {
    const r = await http('POST', '/api/operator/system/update', { targetVersion: '3' });
    const id = r.body.task.id as string;
    // Killed while it waits for the broken version's health.
    await waitFor(async () => ((await task(id))?.status === 'running' ? true : undefined), { timeoutMs: 60_000, what: 'the update to run' });
    const logKey = keys.opsTaskLogs(id);
    const admin = createRedis(`redis://sri-admin:${passwords.admin}@127.0.0.1:${redisServer.port}`);
    try {
      await waitFor(async () => ((await admin.xrange(logKey, '-', '+')).some(([, f]) => String(f[1]).includes('step health')) ? true : undefined), { timeoutMs: 300_000, what: 'the health step' });
      await stopChild(opsWorker, 'SIGKILL');
      assert.equal((await task(id)).status, 'running', 'nobody has noticed yet');
      opsWorker = startOpsWorker();
      const t = await waitFinal(id, 120_000);
      assert.equal(t.status, 'interrupted');
      assert.equal(t.error.code, 'OPS_INTERRUPTED');
      // Not taken again: the queue is empty, no lease, the update mark is gone so a new update may start.
      assert.equal(await admin.llen(keys.opsJobs), 0);
      assert.equal(await admin.exists(keys.opsLease), 0);
      assert.equal(await admin.exists(keys.opsActiveUpdate), 0);
    } finally {
      admin.disconnect();
    }
    // The services are put back by a new update (the killed one left version 3 half-started).
    const again = await http('POST', '/api/operator/system/update', { targetVersion: '2' });
    assert.equal(again.status, 202, JSON.stringify(again.body));
    const t2 = await waitFinal(again.body.task.id);
    assert.equal(t2.status, 'done', JSON.stringify(t2, null, 2));
    assert.equal((await task(id)).status, 'interrupted', 'still interrupted: never re-run');
  });
});

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
 * - `sri ops check | tasks | logs` against the same API.
 * - Without podman: the Redis ACL part still runs (a browser worker's user cannot push to sri:ops:jobs), the rest is
 *   skipped naming the missing package.
 * The engine, registry, images, compose project, API and ops worker come from test/support/podman-ops.ts (the
 * dashboard's system-page test drives the same stack).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { freePort } from '../../src/embedded/ports.ts';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../src/embedded/redis-server.ts';
import { workerAclRules } from '../../src/shared/enrolment.ts';
import { keys } from '../../src/shared/keys.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { runSri } from '../support/cli.ts';
import { OPS_USERS, PodmanOpsStack, podmanSkip, operatorApi } from '../support/podman-ops.ts';
import { tempDir, waitFor } from '../support/services.ts';
import { writeUsersAcl } from '../support/acl.ts';

const USERS = OPS_USERS;
const OPERATOR_TOKEN = randomBytes(24).toString('hex');

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

describe('ops worker on podman: system.check, update, rollback, kill -9', { skip: podmanSkip() }, () => {
  // Made in before(): a skipped suite runs no hook.
  let stack: PodmanOpsStack;
  const runningImages = () => stack.runningImages();

  const { http, task, waitFinal } = operatorApi(() => stack, OPERATOR_TOKEN);

  // Its own bound: building and pushing three images is minutes on a loaded machine (the file's 300 s per test was
  // exceeded with the load average above 60).
  before(async () => {
    stack = new PodmanOpsStack({ operatorToken: OPERATOR_TOKEN });
    await stack.start();
  }, { timeout: 600_000 });

  after(async () => {
    await stack?.stop();
  }, { timeout: 120_000 });

  it('system.check: reads the running version from the containers and the offered ones from the registry', async () => {
    const r = await http('POST', '/api/operator/system/check');
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const t = await waitFinal(r.body.task.id);
    assert.equal(t.status, 'done', JSON.stringify(t));
    assert.equal(t.details.runningVersion, '1');
    assert.equal(t.details.latestVersion, '3');
    assert.equal(t.details.updateAvailable, true);
    assert.deepEqual(t.details.availableVersions, ['1', '2', '3']);
    assert.deepEqual(runningImages(), [`${stack.registry}/sri/platform:1`], 'a check changes nothing');
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
    assert.deepEqual(runningImages(), [`${stack.registry}/sri/platform:2`]);
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

    const sse = await fetch(`${stack.api.url}/api/operator/system/tasks/${id}/logs`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, accept: 'text/event-stream' } });
    assert.equal(sse.status, 200);
    const text = await sse.text();
    assert.match(text, /event: line/);
    assert.match(text, /every service is healthy/);
    assert.match(text, /event: end/);
    assert.equal((await fetch(`${stack.api.url}/api/operator/system/tasks/${id}`)).status, 403, 'operator only');
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
    assert.deepEqual(runningImages(), [`${stack.registry}/sri/platform:2`]);
  });

  it('reports an update interrupted when its ops worker is killed with SIGKILL, and never runs it again', async () => {
    const r = await http('POST', '/api/operator/system/update', { targetVersion: '3' });
    const id = r.body.task.id as string;
    // Killed while it waits for the broken version's health.
    await waitFor(async () => ((await task(id))?.status === 'running' ? true : undefined), { timeoutMs: 60_000, what: 'the update to run' });
    const logKey = keys.opsTaskLogs(id);
    const admin = createRedis(`redis://sri-admin:${stack.passwords.admin}@127.0.0.1:${stack.redisServer.port}`);
    try {
      await waitFor(async () => ((await admin.xrange(logKey, '-', '+')).some(([, f]) => String(f[1]).includes('step health')) ? true : undefined), { timeoutMs: 300_000, what: 'the health step' });
      await stack.stopChild(stack.opsWorker, 'SIGKILL');
      assert.equal((await task(id)).status, 'running', 'nobody has noticed yet');
      stack.startOpsWorker();
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

  it('the CLI: sri ops check, tasks and logs through the API, with OPERATOR_TOKEN', async () => {
    const env = { OPERATOR_TOKEN };
    const api = ['--api', stack.api.url];
    const check = await runSri(['ops', 'check', ...api], env);
    assert.equal(check.code, 0, check.stderr + check.stdout);
    assert.match(check.stdout, /system\.check [0-9a-f-]{36} done: running 2, newest 3 \(update available\)/);

    const tasks = await runSri(['ops', 'tasks', ...api, '--json'], env);
    assert.equal(tasks.code, 0, tasks.stderr);
    const list = JSON.parse(tasks.stdout).tasks as any[];
    const interrupted = list.find((t) => t.status === 'interrupted');
    assert.ok(interrupted, 'the interrupted update is in the audit');
    const table = await runSri(['ops', 'tasks', ...api], env);
    assert.match(table.stdout, new RegExp(`${interrupted.id}\\s+system\\.update\\s+interrupted`));
    assert.match(table.stdout, /OPS_INTERRUPTED/);

    const logs = await runSri(['ops', 'logs', interrupted.id, ...api], env);
    assert.equal(logs.code, 1, 'a task that did not end done exits 1');
    assert.match(logs.stdout + logs.stderr, /step health/);
    assert.match(logs.stdout, new RegExp(`system\\.update ${interrupted.id} interrupted: .* — OPS_INTERRUPTED`));

    const refused = await runSri(['ops', 'check', ...api], { OPERATOR_TOKEN: 'not-the-token' });
    assert.notEqual(refused.code, 0, 'a wrong operator token is refused');
  });
});

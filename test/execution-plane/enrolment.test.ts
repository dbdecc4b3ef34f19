/**
 * The worker's side of enrolment and revocation without a Redis ACL file (docs/security.md "Worker enrolment"): a
 * plain redis-server (default user, as `sri up` runs it) and the API with an OPERATOR_TOKEN.
 *
 * - the credentials of an enrolment kept in WORKER_CREDENTIALS_FILE (mode 0600) and used at the next start;
 * - the cooperative revocation: a worker with no user of its own finds its mark at its heartbeat;
 * - the enforced one seen from the connection: refused credentials are taken for a revocation only when the refusal
 *   lasts WORKER_REVOKED_AFTER_MS (a Redis that lost its users and gets them back in time is no revocation);
 * - the configuration a worker refuses.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadWorkerConfig } from '../../src/execution-plane/config.ts';
import { resolveWorkerIdentity } from '../../src/execution-plane/enrolment.ts';
import { Heartbeat } from '../../src/execution-plane/heartbeat.ts';
import { RevocationWatch } from '../../src/execution-plane/revocation.ts';
import { keys } from '../../src/shared/keys.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { tempDir, waitFor } from '../support/services.ts';
import { testWorkerConfig } from './support/jobs.ts';

const OPERATOR_TOKEN = 'operator-token-for-tests-0123456789-abcdef';
const logger = createLogger({ name: 'enrol-test', level: 'silent' });

describe('worker enrolment without a Redis ACL file', () => {
  let t: TestApi;
  const dir = tempDir('sri-enrol-worker-');
  const opened: Redis[] = [];
  const op = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(t.api.url + path, {
      method, headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: r.status, body: await r.json() as any };
  };
  const config = (extra: Record<string, string>) => testWorkerConfig({ redisUrl: t.redisUrl, s3Endpoint: 'http://127.0.0.1:9', logDir: dir.path, extra });

  before(async () => {
    t = await startTestApi({ OPERATOR_TOKEN, RECONCILE_INTERVAL_MS: '1000' });
  });
  after(async () => {
    for (const r of opened) r.disconnect();
    await t?.stop();
    dir.remove();
  });

  it('keeps the credentials an enrolment gave in WORKER_CREDENTIALS_FILE (0600) and starts from it without a token', async () => {
    const created = (await op('POST', '/api/operator/worker-enrolments', { name: 'filed' })).body;
    const file = join(dir.path, 'state', 'worker-credentials.json');
    const first = await resolveWorkerIdentity(config({ WORKER_ENROLMENT_TOKEN: created.token, WORKER_CREDENTIALS_FILE: file }), logger);
    assert.equal(first.source, 'enrolment');
    assert.equal(first.config.workerId, created.enrolment.workerId);
    assert.equal(first.config.enrolmentToken, undefined, 'the spent token is not kept');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const own = createRedis(first.config.redisUrl, { maxRetriesPerRequest: 1 });
    opened.push(own);
    await own.client('SETNAME', 'enrol-test-own');
    const line = String(await t.redis.call('CLIENT', 'LIST')).split('\n').find((l) => l.includes(' name=enrol-test-own '));
    assert.match(line ?? '', new RegExp(` user=${created.enrolment.redisUser} `), 'REDIS_URL now names the worker\'s own user');

    // The next start: the file, no token (the spent one would be refused).
    const again = await resolveWorkerIdentity(config({ WORKER_CREDENTIALS_FILE: file, WORKER_ENROLMENT_TOKEN: created.token }), logger);
    assert.equal(again.source, 'credentials-file');
    assert.equal(again.config.redisUrl, first.config.redisUrl);
    chmodSync(file, 0o644);
    await assert.rejects(resolveWorkerIdentity(config({ WORKER_CREDENTIALS_FILE: file }), logger), /mode 644.*chmod 600/);
    // No file yet and no token: the worker runs as REDIS_URL says (the fleet user), writing nothing.
    const missing = join(dir.path, 'none.json');
    const plain = config({ WORKER_CREDENTIALS_FILE: missing });
    assert.deepEqual(await resolveWorkerIdentity(plain, logger), { config: plain, source: 'configured' });
    assert.equal(existsSync(missing), false);
  });

  it('without an ACL the revocation is cooperative: the heartbeat finds the mark and the worker stops itself', async () => {
    const workerId = 'coop-worker-1';
    let revoked = 0;
    const beat = new Heartbeat({
      redis: t.redis, workerId, intervalMs: 60_000, logger, onRevoked: () => { revoked++; },
      report: () => ({ workerId, state: 'ready', host: 'h', pid: 1, startedAt: Date.now(), heartbeatIntervalMs: 60_000, maxJobs: 1, jobsInFlight: 0 }),
    });
    await beat.beat();
    assert.equal(revoked, 0);
    const r = await op('POST', `/api/operator/workers/${workerId}/revoke`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.worker.enforced, false, 'no Redis user of its own to delete: only marked');
    assert.ok(await t.redis.hget(keys.workersRevoked, workerId));
    await beat.beat();
    assert.equal(revoked, 1);
    await beat.stop();
  });

  it('takes refused credentials for a revocation only when the refusal lasts WORKER_REVOKED_AFTER_MS', async () => {
    const created = (await op('POST', '/api/operator/worker-enrolments', { name: 'watched' })).body;
    const id = await resolveWorkerIdentity(config({ WORKER_ENROLMENT_TOKEN: created.token }), logger);
    const user = created.enrolment.redisUser as string;
    const conn = createRedis(id.config.redisUrl);
    conn.on('error', () => { /* refusals are what the watch follows */ });
    opened.push(conn);
    await conn.ping();
    const reasons: string[] = [];
    const watch = new RevocationWatch({ confirmMs: 3000, logger, onRevoked: (why) => reasons.push(why) });
    watch.watch(conn);

    // A Redis that lost the user (restarted without its ACL file) and gets it back from the API's reconciliation.
    await t.redis.call('ACL', 'DELUSER', user);
    await waitFor(async () => (await t.redis.call('ACL', 'USERS') as string[]).includes(user), { timeoutMs: 5000, what: 'the user put back' });
    await waitFor(async () => (await conn.ping()) === 'PONG', { timeoutMs: 5000, what: 'reconnected with the same credentials' });
    assert.deepEqual(reasons, [], 'a refusal that ended in time is no revocation');

    // Revoked for good: the user is deleted and stays deleted.
    assert.equal((await op('POST', `/api/operator/workers/${created.enrolment.workerId}/revoke`)).body.worker.enforced, true);
    await waitFor(() => reasons.length === 1, { timeoutMs: 10_000, what: 'the revocation seen' });
    assert.match(reasons[0]!, /kept refusing the worker's credentials for 3000 ms \(WRONGPASS/);
    watch.stop();
  });

  it('refuses OPERATOR_TOKEN in a worker\'s environment, and a malformed enrolment token', () => {
    const base = { SCRIPT_SIGNING_SECRET: 'x'.repeat(40) };
    assert.throws(() => loadWorkerConfig({ ...base, OPERATOR_TOKEN: 'y'.repeat(40) }), /OPERATOR_TOKEN is set, but a worker must not hold/);
    assert.throws(() => loadWorkerConfig({ ...base, WORKER_ENROLMENT_TOKEN: 'not-a-token' }), /WORKER_ENROLMENT_TOKEN must be a token/);
    assert.equal(loadWorkerConfig({ ...base, WORKER_ENROLMENT_TOKEN: `sri-enrol.${'A'.repeat(43)}` }).enrolmentToken, `sri-enrol.${'A'.repeat(43)}`);
  });
});

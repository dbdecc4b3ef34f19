/**
 * A busy machine makes Redis slow, not gone: the API must not refuse a run because one command took longer than its
 * timeout. Redis is made to hold every write for longer than the API's command timeout (CLIENT PAUSE … WRITE), the
 * way a saturated host holds it, and POST /api/run must still queue the job.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { keys } from '../../src/shared/keys.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { startTestApi, type TestApi, type TestOrg } from '../support/api.ts';

/** Longer than the API's Redis command timeout (5 s), so the first try of the push times out. */
const PAUSE_MS = 8000;

describe('a slow Redis', () => {
  let t: TestApi;
  let org: TestOrg;
  let admin: Redis;
  before(async () => {
    t = await startTestApi({}, { apiOwnsRedis: true });
    org = await t.createOrg();
    admin = createRedis(t.redisUrl);
  });
  after(async () => {
    admin?.disconnect();
    await t?.stop();
  });

  it('queues a run whose push timed out while Redis held writes, instead of answering 503', async () => {
    await admin.call('CLIENT', 'PAUSE', String(PAUSE_MS), 'WRITE');
    const started = Date.now();
    const r = await fetch(`${t.api.url}/api/run`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${org.token}` }, body: JSON.stringify({ providerId: 'demo' }),
    });
    const body = await r.json() as { jobId?: string; error?: unknown };
    assert.equal(r.status, 202, `POST /api/run → ${r.status} ${JSON.stringify(body)}`);
    // The answer came after the pause: the push did wait for Redis (it was not answered from elsewhere).
    assert.ok(Date.now() - started >= PAUSE_MS - 1000, 'the run was queued once Redis took writes again');
    assert.equal(await admin.get(keys.jobStatus(body.jobId!)), 'queued');
    assert.equal(await admin.llen(keys.orgJobs(org.orgId)), 1, 'the message was pushed exactly once although the push was tried again');
  });
});

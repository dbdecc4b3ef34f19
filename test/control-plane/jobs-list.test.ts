/**
 * GET /api/jobs with filters (status, provider, created between two instants) on real services (redis-server,
 * s3rver, PGlite): each filter keeps exactly the jobs it names, they combine, paging and `total` follow the filter,
 * every item names its user, and malformed filters answer VALIDATION_FAILED naming the field.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApi, type TestApi, type TestOrg } from '../support/api.ts';

describe('GET /api/jobs filters', () => {
  let t: TestApi;
  let org: TestOrg;
  const ids: string[] = [];

  const list = async (query: string) => {
    const r = await fetch(`${t.api.url}/api/jobs?${query}`, { headers: { authorization: `Bearer ${org.token}` } });
    return { status: r.status, body: await r.json() as any };
  };
  const idsOf = (body: { jobs: { id: string }[] }) => body.jobs.map((j) => j.id).sort();

  before(async () => {
    t = await startTestApi();
    org = await t.createOrg();
    // Six jobs, made through the API, then given statuses, providers and creation days of their own.
    for (let i = 0; i < 6; i++) ids.push(await t.runJob(org));
    await t.db.asSystem((tx) => tx.query(`INSERT INTO providers (id, name, display_name, allowed_hosts)
      VALUES ('other', 'other', 'Other portal', '["other.example"]') ON CONFLICT (id) DO NOTHING`));
    const shape: [string, string, string][] = [
      ['done', 'demo', '2026-01-05T10:00:00Z'], ['failed', 'demo', '2026-01-10T10:00:00Z'], ['dead', 'other', '2026-01-15T10:00:00Z'],
      ['done', 'other', '2026-01-20T10:00:00Z'], ['failed', 'other', '2026-01-31T23:30:00Z'], ['queued', 'demo', '2026-02-01T00:30:00Z'],
    ];
    await t.db.withOrg(org.orgId, async (tx) => {
      for (const [i, [status, provider, created]] of shape.entries()) {
        await tx.query('UPDATE jobs SET status = $2, provider_id = $3, created_at = $4::timestamptz WHERE id = $1', [ids[i], status, provider, created]);
      }
    });
  });

  after(async () => { await t?.stop(); });

  it('lists every job newest first, each with the user who ran it, when no filter is given', async () => {
    const { status, body } = await list('pageSize=100');
    assert.equal(status, 200);
    assert.equal(body.total, 6);
    assert.deepEqual(body.jobs.map((j: { id: string }) => j.id), [...ids].reverse());
    assert.ok(body.jobs.every((j: { userId: string; userName: string }) => j.userId === org.userId && j.userName === 'User'));
  });

  it('keeps the jobs of one status, or of several when the parameter is repeated', async () => {
    assert.deepEqual(idsOf((await list('status=failed')).body), [ids[1], ids[4]].sort());
    const several = (await list('status=failed&status=dead')).body;
    assert.deepEqual(idsOf(several), [ids[1], ids[2], ids[4]].sort());
    assert.equal(several.total, 3);
  });

  it('keeps the jobs of one provider, and combines filters', async () => {
    assert.deepEqual(idsOf((await list('providerId=other')).body), [ids[2], ids[3], ids[4]].sort());
    assert.deepEqual(idsOf((await list('providerId=other&status=failed')).body), [ids[4]]);
    assert.deepEqual((await list('providerId=nobody')).body, { jobs: [], page: 1, pageSize: 20, total: 0 });
  });

  it('keeps jobs created from `from` (included) to `to` (excluded), as dates or instants with an offset', async () => {
    assert.deepEqual(idsOf((await list('from=2026-01-10&to=2026-01-20')).body), [ids[1], ids[2]].sort());
    // January in Guayaquil (UTC-5): the job of 2026-01-31 23:30 UTC is still January there, the one of 00:30 UTC too.
    const jan = `from=${encodeURIComponent('2026-01-01T00:00:00-05:00')}&to=${encodeURIComponent('2026-02-01T00:00:00-05:00')}`;
    assert.deepEqual(idsOf((await list(jan)).body), [...ids].sort());
    assert.deepEqual(idsOf((await list('from=2026-01-20T10:00:00Z')).body), [ids[3], ids[4], ids[5]].sort());
  });

  it('pages within the filter: total counts the matching jobs, pages hold them in order', async () => {
    const p1 = (await list('status=done&status=failed&pageSize=2&page=1')).body;
    const p2 = (await list('status=done&status=failed&pageSize=2&page=2')).body;
    assert.equal(p1.total, 4);
    assert.deepEqual([...p1.jobs, ...p2.jobs].map((j: { id: string }) => j.id), [ids[4], ids[3], ids[1], ids[0]]);
  });

  it('refuses malformed filters with VALIDATION_FAILED naming the field', async () => {
    for (const [query, field] of [['status=finished', 'status'], ['from=yesterday', 'from'], ['to=2026-13-01', 'to'],
      ['from=2026-02-01&to=2026-01-01', 'to'], ['from=2026-01-01T10:00:00', 'from']] as const) {
      const r = await list(query);
      assert.equal(r.status, 400, query);
      assert.equal(r.body.error.code, 'VALIDATION_FAILED', query);
      assert.ok(r.body.error.details.some((d: { field: string }) => d.field.startsWith(field)), `${query}: ${JSON.stringify(r.body.error.details)}`);
    }
  });
});

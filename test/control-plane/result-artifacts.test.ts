/**
 * The result's `artifacts` list (every evidence file with bytes, sha256 and content type) on the control plane's
 * side: the results listener stores it (migration 0006_result_artifacts.sql) and GET /api/jobs/{id} shows it, each
 * with a link that serves exactly the bytes the hash names. Real redis-server, s3rver and PGlite.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { findJob } from '../../src/control-plane/db/queries/jobs.ts';
import { keys } from '../../src/shared/keys.ts';
import { s3Uri } from '../../src/shared/s3.ts';
import type { ResultArtifact, ResultMessage } from '../../src/shared/schemas.ts';
import { startTestApi, type TestApi, type TestOrg } from '../support/api.ts';
import { waitFor } from '../support/services.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('result artifacts: stored by the results listener, shown by GET /api/jobs/{id}', () => {
  let t: TestApi;
  let org: TestOrg;

  before(async () => {
    t = await startTestApi();
    org = await t.createOrg();
  });
  after(async () => { await t?.stop(); });

  const getJob = async (id: string) => {
    const r = await fetch(`${t.api.url}/api/jobs/${id}`, { headers: { authorization: `Bearer ${org.token}` } });
    assert.equal(r.status, 200);
    return ((await r.json()) as { job: { status: string; artifacts: Array<Record<string, unknown> & { url: string; uri: string }> } }).job;
  };

  async function publishDone(jobId: string, files: Record<string, Buffer>, extra: Partial<ResultMessage> = {}) {
    const bucket = t.config.s3ResultsBucket;
    const prefix = `results/${org.orgId}/${org.userId}/${jobId}/`;
    const artifacts: ResultArtifact[] = [];
    for (const [name, body] of Object.entries(files)) {
      const contentType = name.endsWith('.xml') ? 'application/xml' : name.endsWith('.log') ? 'text/plain; charset=utf-8' : 'application/pdf';
      await t.blobStore.put(bucket, prefix + name, body, contentType);
      artifacts.push({ name, kind: name === 'execution.log' ? 'log' : 'download', uri: s3Uri(bucket, prefix + name), bytes: body.length, sha256: sha256(body), contentType });
    }
    const result: ResultMessage = {
      jobId, orgId: org.orgId, userId: org.userId, providerId: 'demo', success: true, status: 'done', duration: 10, attempt: 1,
      workerId: 'worker-a', finishedAt: new Date().toISOString(),
      files: { log: s3Uri(bucket, `${prefix}execution.log`), screenshots: [], download: artifacts.find((a) => a.kind === 'download')?.uri },
      artifacts, ...extra,
    };
    await t.redis.publish(keys.orgDone(org.orgId), JSON.stringify(result));
    return artifacts;
  }

  it('keeps every artifact with bytes, sha256 and content type, each download included, and links serve those bytes', async () => {
    const jobId = await t.runJob(org);
    const xml = Buffer.from('<factura><identificacionComprador>1790012345001</identificacionComprador></factura>\n');
    const pdf = Buffer.from('%PDF-1.4 second document\n');
    const sent = await publishDone(jobId, { 'execution.log': Buffer.from('line\n'), 'factura-001.xml': xml, 'factura-002.pdf': pdf });
    const job = await waitFor(async () => { const j = await getJob(jobId); return j.status === 'done' ? j : undefined; }, { what: 'the job recorded as done' });
    assert.deepEqual(job.artifacts.map(({ url: _url, ...a }) => a), sent.map(({ name, kind, uri, bytes, sha256: hash, contentType }) => ({ kind, name, uri, bytes, sha256: hash, contentType })));
    for (const a of job.artifacts) {
      const body = Buffer.from(await (await fetch(a.url)).arrayBuffer());
      assert.equal(sha256(body), a['sha256'], `${String(a['name'])} served as hashed`);
    }
    const row = await t.db.withOrg(org.orgId, (tx) => findJob(tx, jobId));
    assert.deepEqual(row?.artifacts, sent);
  });

  it('records a result whose artifacts list is malformed, listing its files instead', async () => {
    const jobId = await t.runJob(org);
    await publishDone(jobId, { 'execution.log': Buffer.from('line\n') }, { artifacts: [{ name: 'x' }] as unknown as ResultArtifact[] });
    const job = await waitFor(async () => { const j = await getJob(jobId); return j.status === 'done' ? j : undefined; }, { what: 'the job recorded as done' });
    assert.deepEqual(job.artifacts.map((a) => [a['kind'], a['name'], a['sha256']]), [['log', 'execution.log', undefined]]);
  });

  it('links only objects under the organisation\'s own prefix, whatever the artifacts list names', async () => {
    const jobId = await t.runJob(org);
    const [log] = await publishDone(jobId, { 'execution.log': Buffer.from('line\n') }, {
      artifacts: [
        { name: 'execution.log', kind: 'log', uri: s3Uri(t.config.s3ResultsBucket, `results/${org.orgId}/${org.userId}/${jobId}/execution.log`), bytes: 5, sha256: sha256(Buffer.from('line\n')), contentType: 'text/plain' },
        { name: 'other.pdf', kind: 'download', uri: s3Uri(t.config.s3ResultsBucket, 'results/another-org/u/j/other.pdf'), bytes: 1, sha256: '0'.repeat(64), contentType: 'application/pdf' },
      ],
    });
    const job = await waitFor(async () => { const j = await getJob(jobId); return j.status === 'done' ? j : undefined; }, { what: 'the job recorded as done' });
    assert.deepEqual(job.artifacts.map((a) => a.uri), [log!.uri]);
  });

  it('records parsed data and an error message holding NUL characters (U+FFFD in PostgreSQL, the S3 file unchanged)', async () => {
    const jobId = await t.runJob(org);
    const bucket = t.config.s3ResultsBucket;
    const key = `results/${org.orgId}/${org.userId}/${jobId}/parsed-data.json`;
    const raw = Buffer.from(JSON.stringify({ razonSocial: 'ACME\u0000 S.A.', ['k\u0000ey']: ['a\u0000b', 1, null], nested: { ok: 'sí' } }));
    await t.blobStore.put(bucket, key, raw, 'application/json');
    await publishDone(jobId, { 'execution.log': Buffer.from('line\n') }, {
      success: false, status: 'failed', error: { code: 'SCRIPT_ERROR', message: 'bad\u0000byte' },
      files: { log: s3Uri(bucket, `results/${org.orgId}/${org.userId}/${jobId}/execution.log`), screenshots: [], parsedData: s3Uri(bucket, key) },
    });
    const row = await waitFor(async () => {
      const j = await t.db.withOrg(org.orgId, (tx) => findJob(tx, jobId));
      return j?.status === 'failed' ? j : undefined;
    }, { what: 'the job recorded as failed' });
    assert.deepEqual(row.result, { razonSocial: 'ACME\uFFFD S.A.', ['k\uFFFDey']: ['a\uFFFDb', 1, null], nested: { ok: 'sí' } });
    assert.equal(row.error_message, 'bad\uFFFDbyte');
    assert.deepEqual(await t.blobStore.get(bucket, key), raw, 'the evidence in S3 keeps its bytes');
  });
});

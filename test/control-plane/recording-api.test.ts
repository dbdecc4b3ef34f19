/**
 * Recordings on the control plane's side (docs/scripts.md "Recordings"): `record` accepted and validated on flow
 * creation (stored with the flow version) and on a run (override), carried in the queued job message (the run's, else
 * the flow's; none when neither), and the trace.zip and video.webm a worker reports listed by GET /api/jobs/{id} with
 * links like any other evidence. Real redis-server, s3rver and PGlite.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { keys } from '../../src/shared/keys.ts';
import { s3Uri } from '../../src/shared/s3.ts';
import { JobMessage, type ResultArtifact, type ResultMessage } from '../../src/shared/schemas.ts';
import { startTestApi, type TestApi, type TestOrg } from '../support/api.ts';
import { waitFor } from '../support/services.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('record: flows, runs, job messages and the job detail', () => {
  let t: TestApi;
  let org: TestOrg;
  before(async () => {
    t = await startTestApi();
    org = await t.createOrg();
  });
  after(async () => { await t?.stop(); });

  const http = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${t.api.url}${path}`, {
      method, headers: { authorization: `Bearer ${org.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: r.status, body: await r.json() as any };
  };
  const queued = async (jobId: string) => {
    const m = (await t.redis.lrange(keys.orgJobs(org.orgId), 0, -1)).map((raw) => JobMessage.parse(JSON.parse(raw))).find((x) => x.jobId === jobId);
    assert.ok(m, `job ${jobId} is queued`);
    return m;
  };
  const flowBody = (version: string, extra: Record<string, unknown> = {}) => ({
    providerId: 'demo', version, name: 'Recorded', steps: [{ type: 'navigate', url: 'http://127.0.0.1:3100/' }], ...extra,
  });

  it('stores a flow\'s record, refuses an unknown one, and a flow without it says none', async () => {
    const made = await http('POST', '/api/flows', flowBody('2.0.0', { record: 'onFailure' }));
    assert.equal(made.status, 201, JSON.stringify(made.body));
    assert.equal(made.body.flow.record, 'onFailure');
    assert.equal((await http('GET', `/api/flows/${made.body.flow.id}`)).body.flow.record, 'onFailure');
    const bad = await http('POST', '/api/flows', flowBody('2.0.1', { record: 'sometimes' }));
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'VALIDATION_FAILED');
    const plain = await http('POST', '/api/flows', flowBody('2.0.2'));
    assert.equal(plain.body.flow.record, 'none');
  });

  it('puts the flow\'s record in the job message, a run\'s record over it, and none when neither asks', async () => {
    const flow = (await http('POST', '/api/flows', flowBody('3.0.0', { record: 'onFailure' }))).body.flow;
    assert.equal((await http('POST', `/api/flows/${flow.id}/activate`, {})).status, 200);
    const byFlow = (await http('POST', '/api/run', { providerId: 'demo' })).body.jobId as string;
    assert.equal((await queued(byFlow)).record, 'onFailure');
    const always = (await http('POST', '/api/run', { providerId: 'demo', record: 'always' })).body.jobId as string;
    assert.equal((await queued(always)).record, 'always');
    const none = (await http('POST', '/api/run', { providerId: 'demo', record: 'none' })).body.jobId as string;
    assert.equal((await queued(none)).record, undefined, 'none is the absence of the field (older workers read the same message)');
    const bad = await http('POST', '/api/run', { providerId: 'demo', record: 'yes' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'VALIDATION_FAILED');

    const plain = (await http('POST', '/api/flows', flowBody('3.0.1'))).body.flow;
    await http('POST', `/api/flows/${plain.id}/activate`, {});
    const neither = (await http('POST', '/api/run', { providerId: 'demo' })).body.jobId as string;
    assert.equal((await queued(neither)).record, undefined);
  });

  it('lists the trace and the video a worker stored in the job detail, with download links', async () => {
    const jobId = (await http('POST', '/api/run', { providerId: 'demo', record: 'onFailure' })).body.jobId as string;
    const bucket = t.config.s3ResultsBucket;
    const prefix = `results/${org.orgId}/${org.userId}/${jobId}/`;
    const files: [string, ResultArtifact['kind'], string, Buffer][] = [
      ['execution.log', 'log', 'text/plain; charset=utf-8', Buffer.from('line\n')],
      ['trace.zip', 'trace', 'application/zip', Buffer.from('PK\u0005\u0006' + '\0'.repeat(18), 'latin1')],
      ['video.webm', 'video', 'video/webm', Buffer.from('1a45dfa3', 'hex')],
    ];
    const artifacts: ResultArtifact[] = [];
    for (const [name, kind, contentType, body] of files) {
      await t.blobStore.put(bucket, prefix + name, body, contentType);
      artifacts.push({ name, kind, uri: s3Uri(bucket, prefix + name), bytes: body.length, sha256: sha256(body), contentType });
    }
    const result: ResultMessage = {
      jobId, orgId: org.orgId, userId: org.userId, providerId: 'demo', success: false, status: 'failed', duration: 10, attempt: 1,
      workerId: 'worker-a', finishedAt: new Date().toISOString(), error: { code: 'SCRIPT_ERROR', message: 'no total' },
      files: { log: artifacts[0]!.uri, screenshots: [] }, artifacts,
    };
    await t.redis.publish(keys.orgDone(org.orgId), JSON.stringify(result));
    const job = await waitFor(async () => {
      const j = (await http('GET', `/api/jobs/${jobId}`)).body.job;
      return j.status === 'failed' ? j : undefined;
    }, { what: 'the job recorded as failed' });
    const listed = (job.artifacts as { kind: string; name: string; url: string; sha256: string }[]).filter((a) => a.kind === 'trace' || a.kind === 'video');
    assert.deepEqual(listed.map((a) => [a.kind, a.name]), [['trace', 'trace.zip'], ['video', 'video.webm']]);
    for (const a of listed) {
      const body = Buffer.from(await (await fetch(a.url)).arrayBuffer());
      assert.equal(sha256(body), a.sha256, `${a.name} served as stored`);
    }
  });
});

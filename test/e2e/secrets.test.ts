/**
 * Tenant secrets from end to end, on real services (PGlite, redis-server, s3rver, Chromium, a local portal): an
 * admin stores the portal password with PUT /api/secrets/{name}; a flow fills it with `fill {secretRef}`; the API
 * seals it into the job for the job's ids and signs the envelope; a worker with REQUIRE_JOB_SIGNATURE (the
 * default) and TRANSPORT_KEYS logs in with it; nothing of it reaches the evidence; the audit names the job. A job
 * that failed for want of the secret runs again through POST /api/jobs/{id}/retry once the secret is back.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { keys } from '../../src/shared/keys.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { startWorker, type WorkerHandle } from '../../src/execution-plane/worker.ts';
import { startTestApi, type TestApi } from '../support/api.ts';
import { tempDir, waitFor } from '../support/services.ts';
import { startTestPortal, type TestPortal } from '../execution-plane/support/portal.ts';
import { testWorkerConfig } from '../execution-plane/support/jobs.ts';

const TRANSPORT_KEYS = `t2:${randomBytes(32).toString('base64')},t1:${randomBytes(32).toString('base64')}`;

describe('tenant secrets end to end: API → sealed job → worker → evidence', () => {
  let t: TestApi;
  let portal: TestPortal;
  let worker: WorkerHandle;
  const logs = tempDir('sri-e2e-secrets-');
  let token = '';
  let orgId = '';

  async function http(method: string, path: string, body?: unknown) {
    const r = await fetch(t.api.url + path, {
      method, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), authorization: `Bearer ${token}` },
    });
    const text = await r.text();
    return { status: r.status, text, body: text ? JSON.parse(text) as any : undefined };
  }

  const finished = (jobId: string) => waitFor(async () => {
    const r = await http('GET', `/api/jobs/${jobId}`);
    return ['done', 'failed', 'dead'].includes(r.body?.job?.status) ? r.body.job : undefined;
  }, { timeoutMs: 60_000, what: `job ${jobId} to finish` });

  before(async () => {
    portal = await startTestPortal();
    t = await startTestApi({ SECRETS_KEYS: `s1:${randomBytes(32).toString('base64')}`, TRANSPORT_KEYS });
    const config = testWorkerConfig({ redisUrl: t.redisUrl, s3Endpoint: t.config.s3Endpoint, logDir: logs.path, extra: { TRANSPORT_KEYS } });
    assert.equal(config.requireJobSignature, true);
    worker = await startWorker(config, { logger: createLogger({ name: 'worker', level: 'warn', logDir: logs.path, stdout: false }), orgRefreshMs: 100 });
    const reg = await fetch(`${t.api.url}/api/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `e2e-${randomUUID()}@example.com`, password: 'correct-horse-42', name: 'Ana', orgName: 'Acme' }),
    }).then((r) => r.json()) as any;
    token = reg.token;
    orgId = reg.org.id;
  });

  after(async () => {
    await worker?.stop({ graceMs: 5000 });
    await t?.stop();
    await portal?.close();
    logs.remove();
  });

  it('logs in to the portal with a stored secret, keeps it out of the evidence, audits the job; a retry runs once it is back', async () => {
    assert.equal((await http('PUT', '/api/secrets/portalPassword', { value: portal.password })).status, 201);
    // No cookie: the flow logs in with the password, so the page shows the invoices only if the secret arrived.
    assert.equal((await http('POST', '/api/providers/demo/connect', { cookies: [] })).status, 200);
    assert.match((await t.redis.get(keys.session(orgId, (await http('GET', '/api/me')).body.user.id, 'demo')))!, /^sri-enc:v1:t2:/);
    const flow = await http('POST', '/api/flows', {
      providerId: 'demo', version: '1.0.0', name: 'Login', steps: [
        { type: 'navigate', url: `${portal.url}/login` },
        { type: 'fill', selector: '#password', secretRef: 'portalPassword' },
        { type: 'click', selector: '#submit' },
        { type: 'waitFor', selector: '#invoices' },
        { type: 'extract', name: 'invoices', selector: '#invoices tbody tr', fields: { number: 'td.number' } },
      ],
    });
    assert.equal(flow.status, 201, flow.text);
    assert.equal((await http('POST', `/api/flows/${flow.body.flow.id}/activate`, {})).status, 200);

    const run = await http('POST', '/api/run', { providerId: 'demo' });
    assert.equal(run.status, 202, run.text);
    const job = await finished(run.body.jobId);
    assert.equal(job.status, 'done', JSON.stringify(job));
    assert.deepEqual(job.result.invoices.map((r: any) => r.number), ['F-001', 'F-002']);
    const objects = await t.blobStore.list('sri-results', `results/${orgId}/`);
    for (const o of objects) {
      const body = (await t.blobStore.get('sri-results', o.key))!.toString('latin1');
      assert.ok(!body.includes(portal.password), `${o.key} holds no password`);
    }
    const execLog = objects.find((o) => o.key.endsWith(`${run.body.jobId}/execution.log`));
    assert.ok(execLog, 'execution.log stored');
    assert.match((await t.blobStore.get('sri-results', execLog.key))!.toString(), /filled secret "portalPassword" into #password/);
    const audit = await http('GET', `/api/secrets/audit?jobId=${run.body.jobId}`);
    assert.deepEqual(audit.body.events.map((e: any) => [e.name, e.action]), [['portalPassword', 'sent_to_job']]);

    // Without the secret the same flow fails (the session has no credential of that name either)…
    assert.equal((await http('DELETE', '/api/secrets/portalPassword')).status, 200);
    const second = await http('POST', '/api/run', { providerId: 'demo' });
    const failed = await finished(second.body.jobId);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.error?.code, 'SCRIPT_ERROR', JSON.stringify(failed));
    assert.equal(await t.redis.get(keys.jobFinished(second.body.jobId)), 'failed', 'the job id is spent for replays');
    // …and once it is stored again, POST /api/jobs/{id}/retry runs the same job (attempt 2) past the replay check.
    assert.equal((await http('PUT', '/api/secrets/portalPassword', { value: portal.password })).status, 201);
    const retry = await http('POST', `/api/jobs/${second.body.jobId}/retry`);
    assert.equal(retry.status, 202, retry.text);
    const retried = await waitFor(async () => {
      const r = await http('GET', `/api/jobs/${second.body.jobId}`);
      return r.body.job.status === 'done' || (r.body.job.status === 'failed' && r.body.job.attempt === 2) ? r.body.job : undefined;
    }, { timeoutMs: 60_000, what: 'the retried job' });
    assert.equal(retried.status, 'done', JSON.stringify(retried));
    assert.equal(retried.attempt, 2);
  });
});

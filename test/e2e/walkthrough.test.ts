/**
 * The whole platform, end to end, the way `sri up` runs it: embedded redis-server and S3, PGlite, the API in
 * process, a worker child process, the demo portal — all on random ports with a temporary DATA_DIR. The walkthrough
 * is driven over HTTP by the same function `sri demo` uses.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, type StackHandle } from '../../src/embedded/stack.ts';
import { DEMO_INVOICES, DEMO_PASSWORD, invoicePdf } from '../../src/embedded/demo-portal.ts';
import { ApiClient, runDemo, type DemoOutcome } from '../../src/cli/demo.ts';
import { BlobStore, createS3Client } from '../../src/shared/s3.ts';
import { isSriError } from '../../src/shared/errors.ts';
import { readCatalogueHosts } from '../../src/shared/provider-catalogue.ts';
import { createRedis } from '../../src/shared/redis.ts';
import { tempDir } from '../support/services.ts';
import { seedStackDatabase } from '../support/database.ts';

/** The caller's environment without anything that would point the stack at external services. */
function cleanEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(REDIS_URL|S3_|DATABASE_URL|POSTGRES_|API_|JWT_|SCRIPT_SIGNING_SECRET|WORKER_ID|PORT|HOST|DEMO_PORT|DATA_DIR|LOG_DIR|WORKERS$)/.test(k)) delete env[k];
  }
  return env;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('the whole stack, end to end', () => {
  const dir = tempDir('sri-e2e-');
  const workerOutput: string[] = [];
  let stack: StackHandle;
  let store: BlobStore;
  let demo: DemoOutcome;
  const printed: string[] = [];

  before(async () => {
    // A migrated PGlite in DATA_DIR (test/support/database.ts): the stack resumes it instead of running initdb.
    await seedStackDatabase(`${dir.path}/data`);
    stack = await startStack({
      env: {
        ...cleanEnv(),
        DATA_DIR: `${dir.path}/data`, LOG_DIR: `${dir.path}/logs`, LOG_LEVEL: 'warn',
        EMBEDDED_REDIS_PORT: '0', EMBEDDED_S3_PORT: '0', PORT: '0', DEMO_PORT: '0', WORKERS: '1',
      },
      onWorkerOutput: (id, line) => { workerOutput.push(`[${id}] ${line}`); },
    });
    store = new BlobStore(createS3Client({ s3Endpoint: stack.s3Endpoint, s3Region: 'us-east-1', s3AccessKey: 'minioadmin', s3SecretKey: 'minioadmin' }));
  });

  after(async () => {
    store?.client.destroy();
    await stack?.stop({ graceMs: 5000 });
    dir.remove();
  });

  it('runs the demo walkthrough over HTTP to a done job', async () => {
    demo = await runDemo({ apiUrl: stack.apiUrl, portalUrl: stack.portalUrl, print: (l) => printed.push(l), jobTimeoutMs: 90_000 });
    assert.equal(demo.job.status, 'done',
      `job ${demo.job.status}: ${JSON.stringify(demo.job.error)}\n${printed.join('\n')}\n${workerOutput.join('\n')}`);
    assert.equal(demo.job.error ?? null, null);
  });

  it('keeps the evidence in S3: execution.log, the screenshot PNG, the PDF bytes and the parsed invoice rows', async (t) => {
    if (demo?.job.status !== 'done') return t.skip('the walkthrough did not finish');
    const prefix = `results/${demo.org.id}/${demo.user.id}/${demo.jobId}/`;
    const names = (await store.list('sri-results', prefix)).map((o) => o.key.slice(prefix.length)).sort();
    assert.deepEqual(names, ['INV-1001.pdf', 'execution.log', 'parsed-data.json', 'screenshot-0.png']);

    const png = await store.get('sri-results', `${prefix}screenshot-0.png`);
    assert.ok(png && png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'a PNG');

    const pdf = await store.get('sri-results', `${prefix}INV-1001.pdf`);
    assert.ok(pdf, 'the download');
    assert.equal(Buffer.compare(pdf, invoicePdf(DEMO_INVOICES[0]!)), 0, 'the exact bytes the portal served');

    const log = (await store.get('sri-results', `${prefix}execution.log`))!.toString('utf8');
    assert.ok(log.length > 0);

    const parsed = JSON.parse((await store.get('sri-results', `${prefix}parsed-data.json`))!.toString('utf8')) as Record<string, unknown>;
    assert.deepEqual(parsed['invoices'], DEMO_INVOICES.map((i) => ({ ...i, pdf: `/invoices/${i.number}.pdf` })));
    // The portal greets in Spanish only when it receives demo_locale=es-EC: the connected cookies reached the browser.
    // The page also prints the locale: session metadata the page shows is the portal's data, kept as shown
    // (docs/security.md "Evidence and redaction"); only values that are a secret are replaced.
    const portal = parsed['portal'] as Array<Record<string, string | null>>;
    assert.equal(portal.length, 1);
    assert.equal(portal[0]!['greeting'], 'Bienvenido');
    assert.equal(portal[0]!['locale'], 'es-EC', 'the locale the page showed');
    assert.deepEqual(demo.job.result, parsed, 'GET /api/jobs/{id} returns the parsed data');

    // Secrets never reach the evidence (invariant 6).
    for (const [name, text] of [['execution.log', log], ['parsed-data.json', JSON.stringify(parsed)]] as const) {
      assert.ok(!text.includes(DEMO_PASSWORD), `${name} must not contain the portal password`);
      assert.ok(!text.includes(demo.portalSession), `${name} must not contain the session cookie`);
    }
  });

  it('links every artifact from GET /api/jobs/{id} with a download URL that serves its bytes', async (t) => {
    if (demo?.job.status !== 'done') return t.skip('the walkthrough did not finish');
    const byKind = new Map(demo.job.artifacts.map((a) => [a.kind, a]));
    assert.deepEqual([...byKind.keys()].sort(), ['download', 'log', 'parsedData', 'screenshot']);
    for (const a of demo.job.artifacts) {
      const { bucket, key } = /^s3:\/\/(?<bucket>[^/]+)\/(?<key>.+)$/.exec(a.uri)!.groups!;
      assert.equal(bucket, 'sri-results');
      assert.ok(key!.endsWith(`/${a.name}`), `${a.uri} names ${a.name}`);
      const res = await fetch(a.url);
      assert.equal(res.status, 200, `${a.name}: ${a.url}`);
      const body = Buffer.from(await res.arrayBuffer());
      assert.equal(Buffer.compare(body, (await store.get(bucket!, key!))!), 0, `${a.name} served byte for byte`);
    }
    assert.equal(byKind.get('download')!.name, 'INV-1001.pdf');
    assert.equal(byKind.get('screenshot')!.name, 'screenshot-0.png');
  });

  it('answers 404 to a second organisation asking for the first one\'s job and flow', async (t) => {
    if (!demo) return t.skip('the walkthrough did not run');
    const other = new ApiClient(stack.apiUrl);
    const reg = await other.request<{ token: string; org: { id: string } }>('POST', '/api/auth/register', {
      email: `other-${Date.now()}@example.com`, password: 'other-password-123', name: 'Other', orgName: 'Other org',
    });
    other.token = reg.body.token;
    assert.notEqual(reg.body.org.id, demo.org.id);

    for (const path of [`/api/jobs/${demo.jobId}`, `/api/jobs/${demo.jobId}/status`, `/api/flows/${demo.flowId}`]) {
      await assert.rejects(other.request('GET', path), (e: unknown) => {
        assert.ok(isSriError(e), String(e));
        assert.equal(e.code, 'NOT_FOUND', `${path}: ${e.message}`);
        assert.match(e.message, / → 404:/);
        return true;
      });
    }
    await assert.rejects(other.request('POST', `/api/flows/${demo.flowId}/activate`), /→ 404:/);
    const jobs = await other.request<{ jobs: unknown[]; total: number }>('GET', '/api/jobs?page=1&pageSize=20');
    assert.equal(jobs.body.total, 0);
    assert.deepEqual(jobs.body.jobs, []);
    const flows = await other.request<{ flows: unknown[] }>('GET', '/api/flows');
    assert.deepEqual(flows.body.flows, []);

    // The owner still sees both.
    const owner = new ApiClient(stack.apiUrl);
    owner.token = demo.token;
    assert.equal((await owner.request<{ job: { id: string } }>('GET', `/api/jobs/${demo.jobId}`)).body.job.id, demo.jobId);
  });

  it('registers demo for its own portal\'s port only, in the workers\' catalogue too', async () => {
    const port = new URL(stack.portalUrl).port;
    const redis = createRedis(stack.redisUrl);
    try {
      // Migration 0005 keeps demo out of every other catalogue; sri up adds it for this portal alone.
      assert.deepEqual(await readCatalogueHosts(redis, 'demo'), { found: true, allowedHosts: [`127.0.0.1:${port}`, `localhost:${port}`] });
    } finally {
      redis.disconnect();
    }
  });

  it('stop() ends every child process it started, by PID', async () => {
    const pids = [...stack.childPids];
    assert.ok(pids.length >= 2, 'redis-server and one worker');
    assert.ok(pids.every(alive));
    await stack.stop({ graceMs: 10_000 });
    assert.deepEqual(pids.filter(alive), [], 'no child left running');
    const health = await fetch(`${stack.apiUrl}/health`).then(() => 'up', () => 'down');
    assert.equal(health, 'down');
  });
});

/**
 * Module bundles end to end on real services (docs/modules.md): redis-server, the embedded S3 server, a worker with
 * Chromium (test/execution-plane/support/worker-harness.ts) and the API sharing them. The operator publishes
 * demo-invoices@1.0.0 with `sri module publish DIR`; a job naming `demo-invoices@^1` runs 1.0.0; 1.1.0 is published
 * through the API and the next job runs it on the same worker, not restarted; a job of an organisation the manifest
 * does not allow is refused with MODULE_NOT_ALLOWED; a bundle altered in S3 is refused (MODULE_INTEGRITY,
 * MODULE_SIGNATURE_INVALID) and the worker serves the next job.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadApiConfig } from '../../src/control-plane/config.ts';
import { migrate, type Database } from '../../src/control-plane/db/index.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { moduleKeys } from '../../src/shared/modules/manifest.ts';
import { moduleRefScript } from '../../src/shared/modules/ref.ts';
import { buildSignedBundle, checksumsText, moduleSigningKeyring } from '../../src/shared/modules/signature.ts';
import { storeBundle } from '../../src/shared/modules/store.ts';
import { ModuleManifest } from '../../src/shared/modules/manifest.ts';
import type { ResultMessage } from '../../src/shared/schemas.ts';
import { signEnvelope, signScript } from '../../src/shared/signing.ts';
import { ModuleLoader } from '../../src/execution-plane/script/module-loader.ts';
import { startWorkerHarness, type WorkerHarness } from '../execution-plane/support/worker-harness.ts';
import { setSession, signedJob, testOrg } from '../execution-plane/support/jobs.ts';
import { runSri } from '../support/cli.ts';
import { publishDemoProvider, seedDemoProvider } from '../support/providers.ts';
import { keys as redisKeys } from '../../src/shared/keys.ts';
import { tempDir, TEST_JWT_SECRET, TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import { openTestDatabase } from '../support/database.ts';

const OPERATOR_TOKEN = `operator-${randomUUID()}-${randomUUID()}`;
const NAME = `demo-invoices-${randomUUID().slice(0, 6)}`;

/** A job naming `ref`, its reference signed as the control plane signs it, its envelope too. */
function moduleJob(orgId: string, ref: string, base: string) {
  const { scriptHash, signature } = signScript(moduleRefScript(ref), TEST_SIGNING_SECRET);
  const job = signedJob(orgId, 'unused', { metadata: { base }, envelopeSignature: undefined });
  delete job.scriptContent;
  Object.assign(job, { module: ref, scriptHash, signature });
  job.envelopeSignature = signEnvelope(job, TEST_SIGNING_SECRET);
  return job;
}

/** The bundle of `version`: a helpers file and the entry, which uses the helper SDK. */
function bundleFiles(version: string) {
  return {
    'lib.js': `function invoiceRows(page) { return page.locator('#invoices tbody tr').count(); }\n`,
    'main.js': `export default async function run({ page, payload, helpers }) {
  const budget = helpers.deadline(15000);
  const result = helpers.result();
  result.set('version', ${JSON.stringify(version)});
  await page.goto(payload.base + '/invoices', { timeout: budget.remainingMs() });
  result.set('blockerOnInvoices', await helpers.detectBlocker());
  result.set('rows', await helpers.waitUntil(() => invoiceRows(page), { timeoutMs: budget.remainingMs(), message: 'invoice rows' }));
  await page.goto(payload.base + '/login');
  const blocker = await helpers.detectBlocker();
  result.set('blockerOnLogin', blocker && blocker.kind);
}
`,
  };
}

function writeBundleDir(dir: string, manifest: Record<string, unknown>, files: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
}

describe('module bundles on a running worker', { timeout: 240_000 }, () => {
  let h: WorkerHarness;
  let api: ApiHandle;
  let db: Database;
  const dirs = tempDir('sri-modules-');
  let orgA: { orgId: string; token: string; userId: string };
  const orgB = testOrg('modules-b');

  const publish = async (body: unknown, token = OPERATOR_TOKEN) => fetch(`${api.url}/api/operator/modules`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body),
  });
  const run = async (orgId: string, ref: string): Promise<ResultMessage> => h.run(orgId, moduleJob(orgId, ref, h.portal.url));
  const parsed = async (r: ResultMessage) => JSON.parse((await h.object(r.files.parsedData)).toString()) as Record<string, unknown>;
  const manifestOf = (version: string) => ({ name: NAME, version, entry: 'main.js', files: ['lib.js', 'main.js'], allowedHosts: ['127.0.0.1'], allow: { orgs: [orgA.orgId] } });

  before(async () => {
    h = await startWorkerHarness();
    db = await openTestDatabase();
    await migrate(db);
    await seedDemoProvider(db);
    const config = loadApiConfig({
      JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: h.redisUrl, S3_ENDPOINT: h.config.s3Endpoint,
      PORT: '0', OPERATOR_TOKEN, AUTH_RATE_LIMIT_MAX: '1000', LOG_LEVEL: 'silent',
    });
    api = await startApi(config, { db, blobStore: h.store, redis: h.redis, logger: createLogger({ name: 'api-test', level: 'silent' }) });
    // The API published its own catalogue (no demo provider in this database): the harness's entry again.
    await publishDemoProvider(h.redis);
    const reg = await fetch(`${api.url}/api/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `modules-${randomUUID()}@example.com`, password: 'correct-horse-42', name: 'Admin', orgName: `Modules ${randomUUID()}` }),
    });
    const body = await reg.json() as { token: string; org: { id: string }; user: { id: string } };
    assert.equal(reg.status, 201, JSON.stringify(body));
    orgA = { orgId: body.org.id, token: body.token, userId: body.user.id };
    for (const org of [orgA.orgId, orgB]) await setSession(h.redis, org, 'user-1', h.session());
  });

  after(async () => {
    await api?.close();
    await db?.close();
    await h?.stop();
    dirs.remove();
  });

  it('publishes 1.0.0 with sri module publish DIR, and a job naming name@^1 runs it', async () => {
    const dir = join(dirs.path, 'v1.0.0');
    writeBundleDir(dir, manifestOf('1.0.0'), bundleFiles('1.0.0'));
    const cli = await runSri(['module', 'publish', dir, '--api', api.url], { OPERATOR_TOKEN });
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, new RegExp(`published ${NAME}@1\\.0\\.0 \\(2 file\\(s\\), signed with key signing`));
    const keys = (await h.store.list(h.config.s3ScriptsBucket, moduleKeys.prefix(NAME, '1.0.0'))).map((o) => o.key.split('/').pop()).sort();
    assert.deepEqual(keys, ['SHA256SUMS', 'lib.js', 'main.js', 'manifest.json', 'signature.json']);

    const r = await run(orgA.orgId, `${NAME}@^1`);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.deepEqual(await parsed(r), { version: '1.0.0', blockerOnInvoices: null, rows: 2, blockerOnLogin: 'login-wall' });
    assert.match((await h.object(r.files.log)).toString(), new RegExp(`module ${NAME}@\\^1: running ${NAME}@1\\.0\\.0 \\(signature and checksums verified\\)`));
  });

  it('refuses to publish a version again, and refuses a caller without the operator token', async () => {
    const again = await publish({ manifest: manifestOf('1.0.0'), files: bundleFiles('1.0.0') });
    assert.equal(again.status, 409);
    assert.equal((await again.json() as { error: { code: string } }).error.code, 'MODULE_VERSION_EXISTS');
    const notOperator = await publish({ manifest: manifestOf('9.0.0'), files: bundleFiles('9.0.0') }, orgA.token);
    assert.equal(notOperator.status, 403);
    assert.equal((await notOperator.json() as { error: { code: string } }).error.code, 'OPERATOR_ONLY');
    const invalid = await publish({ manifest: { ...manifestOf('9.0.0'), entry: '../x.js' }, files: bundleFiles('9.0.0') });
    assert.equal(invalid.status, 400);
    assert.equal((await invalid.json() as { error: { code: string } }).error.code, 'MODULE_INVALID');
  });

  it('runs 1.1.0 for the next job once it is published, without restarting the worker', async () => {
    const workerId = h.config.workerId;
    const res = await publish({ manifest: manifestOf('1.1.0'), files: bundleFiles('1.1.0') });
    assert.equal(res.status, 201, await res.clone().text());
    const r = await run(orgA.orgId, `${NAME}@^1`);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.equal((await parsed(r))['version'], '1.1.0');
    assert.equal(r.workerId, workerId, 'the same worker');
    assert.ok(['ready', 'busy'].includes(h.worker.state()));
    const exact = await run(orgA.orgId, `${NAME}@1.0.0`);
    assert.equal((await parsed(exact))['version'], '1.0.0', 'an exact version still runs that version');

    const list = await runSri(['module', 'list', '--api', api.url], { OPERATOR_TOKEN });
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`${NAME}\\s+1\\.1\\.0\\s+1\\.1\\.0, 1\\.0\\.0\\s+org ${orgA.orgId}`));
    const mine = await fetch(`${api.url}/api/admin/modules`, { headers: { authorization: `Bearer ${orgA.token}` } });
    assert.equal(mine.status, 200);
    assert.deepEqual((await mine.json() as { modules: { name: string }[] }).modules.map((m) => m.name).filter((n) => n === NAME), [NAME]);
  });

  it('runs the module of a flow made with module instead of steps, through POST /api/run', async () => {
    const call = async (method: string, path: string, payload?: unknown) => {
      const res = await fetch(`${api.url}${path}`, {
        method, headers: { authorization: `Bearer ${orgA.token}`, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(payload === undefined ? {} : { body: JSON.stringify(payload) }),
      });
      const json = await res.json() as any;
      assert.ok(res.ok, `${method} ${path} → ${res.status} ${JSON.stringify(json)}`);
      return json;
    };
    await call('POST', '/api/providers/demo/connect', { cookies: [{ name: 'sid', value: h.portal.sessionId, url: h.portal.url }] });
    const flow = await call('POST', '/api/flows', { providerId: 'demo', version: '1.0.0', name: 'Invoices module', module: `${NAME}@^1` });
    assert.equal(flow.flow.module, `${NAME}@^1`);
    await call('POST', `/api/flows/${flow.flow.id}/activate`, {});
    const { jobId } = await call('POST', '/api/run', { providerId: 'demo', metadata: { base: h.portal.url } }) as { jobId: string };
    const raw = await waitFor(() => h.redis.get(redisKeys.jobResult(jobId)), { timeoutMs: 60_000, what: `result of ${jobId}` });
    const r = JSON.parse(raw) as ResultMessage;
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.equal((await parsed(r))['version'], '1.1.0');
  });

  it('refuses a job of an organisation the manifest does not allow with MODULE_NOT_ALLOWED', async () => {
    const r = await run(orgB, `${NAME}@^1`);
    assert.equal(r.status, 'failed');
    assert.equal(r.error?.code, 'MODULE_NOT_ALLOWED');
    assert.match(r.error?.message ?? '', new RegExp(`${NAME}@1\\.1\\.0 is not allowed for organisation ${orgB}`));
  });

  it('refuses a module that is not published, and a job whose reference is not signed', async () => {
    const missing = await run(orgA.orgId, `${NAME}@^7`);
    assert.equal(missing.error?.code, 'MODULE_NOT_FOUND');
    const job = moduleJob(orgA.orgId, `${NAME}@^1`, h.portal.url);
    // The reference swapped after signing: the signed text was another reference.
    const forged = { ...job, module: `${NAME}@1.0.0` };
    const r = await h.run(orgA.orgId, forged);
    assert.notEqual(r.status, 'done');
    assert.match(r.error?.code ?? '', /JOB_SIGNATURE_INVALID|SCRIPT_INTEGRITY/);
  });

  it('refuses a bundle altered in S3 (a file, then its checksums too) and keeps serving jobs', async () => {
    const keyring = moduleSigningKeyring({ scriptSigningSecret: TEST_SIGNING_SECRET });
    const bucket = h.config.s3ScriptsBucket;
    const files = bundleFiles('1.2.0');
    const manifest = ModuleManifest.parse(manifestOf('1.2.0'));
    assert.ok(await storeBundle(h.store, bucket, buildSignedBundle(keyring, manifest, new Map(Object.entries(files).map(([f, t]) => [f, Buffer.from(t)])))));
    const evil = `function invoiceRows(page) { return 'exfiltrated'; }\n`;
    await h.store.put(bucket, moduleKeys.file(NAME, '1.2.0', 'lib.js'), evil);
    const tampered = await run(orgA.orgId, `${NAME}@^1`);
    assert.equal(tampered.status, 'failed');
    assert.equal(tampered.error?.code, 'MODULE_INTEGRITY');
    assert.match(tampered.error?.message ?? '', /lib\.js does not match its checksum/);

    // Checksums rewritten to match: the signature over them no longer verifies.
    const covered = new Map<string, Buffer>([['lib.js', Buffer.from(evil)], ['main.js', Buffer.from(files['main.js'])],
      ['manifest.json', (await h.store.get(bucket, moduleKeys.manifest(NAME, '1.2.0')))!]]);
    await h.store.put(bucket, moduleKeys.checksums(NAME, '1.2.0'), checksumsText(covered));
    const resigned = await run(orgA.orgId, `${NAME}@^1`);
    assert.equal(resigned.error?.code, 'MODULE_SIGNATURE_INVALID');
    await h.normalJobSucceeds(orgA.orgId);
  });
});

describe('the worker\'s module cache', { timeout: 120_000 }, () => {
  let h: WorkerHarness;
  before(async () => { h = await startWorkerHarness(); });
  after(async () => { await h?.stop(); });

  it('downloads a version once for concurrent and later jobs, and keeps at most WORKER_MODULE_CACHE_MAX versions', async () => {
    const keyring = moduleSigningKeyring({ scriptSigningSecret: TEST_SIGNING_SECRET });
    const bucket = h.config.s3ScriptsBucket;
    const entry = new Map([['main.js', Buffer.from('export default async function run() {}\n')]]);
    for (const v of ['1.0.0', '1.1.0', '2.0.0']) {
      await storeBundle(h.store, bucket, buildSignedBundle(keyring, ModuleManifest.parse({ name: 'cached', version: v, entry: 'main.js' }), entry));
    }
    const loader = new ModuleLoader({ store: h.store, bucket, keyring, maxEntries: 2 });
    const loaded = await Promise.all([loader.load('cached@^1', 'o1'), loader.load('cached@^1', 'o2'), loader.load('cached@1.1.0', 'o3')]);
    assert.deepEqual(loaded.map((m) => m.version), ['1.1.0', '1.1.0', '1.1.0']);
    assert.equal(loader.downloads, 1);
    assert.equal(loaded[0]!.script, loaded[1]!.script, 'one verified script per version');
    await loader.load('cached@1.0.0', 'o1');
    await loader.load('cached@latest', 'o1');
    assert.equal(loader.downloads, 3);
    assert.deepEqual(loader.cached, ['cached@1.0.0', 'cached@2.0.0'], 'the least recently used went first');
    await loader.load('cached@1.0.0', 'o1');
    assert.equal(loader.downloads, 3, 'a held version is not downloaded again');
  });
});

/**
 * A provider's pacing through the control plane (docs/providers.md), on redis-server, s3rver and PGlite: stored in
 * PostgreSQL with the provider, published in its catalogue entry for the workers, listed by GET /api/providers, and
 * its gate — the circuit breaker the workers' gate scripts keep in Redis, a maintenance window in force — read by
 * GET /api/providers/{id}/health.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { loadApiConfig } from '../../src/control-plane/config.ts';
import { migrate, type Database } from '../../src/control-plane/db/index.ts';
import { registerProvider } from '../../src/control-plane/providers/catalogue.ts';
import { startApi, type ApiHandle } from '../../src/control-plane/server.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { readCataloguePacing } from '../../src/shared/provider-catalogue.ts';
import type { ProviderPacing } from '../../src/shared/provider-pacing.ts';
import { ProviderGate } from '../../src/shared/provider-gate/gate.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { BlobStore, createS3Client } from '../../src/shared/s3.ts';
import { startTestRedis, startTestS3, TEST_JWT_SECRET, TEST_SIGNING_SECRET } from '../support/services.ts';
import { openTestDatabase } from '../support/database.ts';

const OPERATOR_TOKEN = `operator-${randomUUID()}${randomUUID()}`;
const logger = createLogger({ name: 'api-provider-health', level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });

describe('provider pacing and health through the API', () => {
  let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
  let s3Server: Awaited<ReturnType<typeof startTestS3>>;
  let db: Database;
  let redis: Redis;
  let blobStore: BlobStore;
  let api: ApiHandle | undefined;
  let token: string;
  const now = Date.now();
  const utc = (at: number) => new Date(at).toISOString().slice(11, 19);
  // A window covering now (two minutes either side), so the answer does not depend on when the test runs.
  const pacing: ProviderPacing = {
    minSpacingMs: 2000, jitterMs: 500, requestsPerMinute: 120,
    maintenanceWindows: [{ start: utc(now - 120_000), end: utc(now + 120_000), timezone: 'UTC' }],
    breaker: { failureThreshold: 2, coolDownMs: 600_000 },
  };

  before(async () => {
    [redisServer, s3Server, db] = await Promise.all([startTestRedis(), startTestS3(), openTestDatabase()]);
    await migrate(db);
    redis = createRedis(redisServer.url);
    const config = loadApiConfig({
      JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, REDIS_URL: redisServer.url, S3_ENDPOINT: s3Server.endpoint,
      PORT: '0', AUTH_RATE_LIMIT_MAX: '1000', LOG_LEVEL: 'silent', OPERATOR_TOKEN,
    });
    blobStore = new BlobStore(createS3Client(config));
    await registerProvider(db, redis, { id: 'acme', name: 'acme', displayName: 'Acme portal', allowedHosts: ['portal.acme.example'], pacing });
    api = await startApi(config, { db, redis, blobStore, logger });
    const reg = await http('POST', '/api/auth/register', { email: `health-${randomUUID()}@example.com`, password: 'correct-horse-42', name: 'H', orgName: 'Health' });
    assert.equal(reg.status, 201, JSON.stringify(reg.body));
    token = reg.body.token as string;
  });
  after(async () => {
    await api?.close();
    redis?.disconnect();
    blobStore?.client.destroy();
    await db?.close();
    await Promise.all([redisServer?.stop(), s3Server?.close()]);
  });

  async function http(method: string, path: string, body?: unknown, bearer = token) {
    const r = await fetch(api!.url + path, {
      method, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
    });
    return { status: r.status, body: await r.json() as any };
  }

  it('keeps the pacing with the provider, publishes it to the workers and lists it; other providers pace nothing', async () => {
    assert.deepEqual(await readCataloguePacing(redis, 'acme'), { found: true, pacing });
    assert.deepEqual(await readCataloguePacing(redis, 'sri'), { found: true, pacing: {} });
    const list = (await http('GET', '/api/providers')).body.providers as { id: string; pacing: ProviderPacing }[];
    assert.deepEqual(list.find((p) => p.id === 'acme')?.pacing, pacing);
    assert.deepEqual(list.find((p) => p.id === 'sri')?.pacing, {});
    // Registering it again without pacing keeps the pacing it has.
    await registerProvider(db, redis, { id: 'acme', name: 'acme', displayName: 'Acme portal', allowedHosts: ['portal.acme.example'] });
    assert.deepEqual(await readCataloguePacing(redis, 'acme'), { found: true, pacing });
  });

  it('shows the breaker the workers opened, the maintenance window in force, and the breaker closed again', async () => {
    const closed = await http('GET', '/api/providers/acme/health');
    assert.equal(closed.status, 200, JSON.stringify(closed.body));
    assert.deepEqual(closed.body.breaker, { enabled: true, state: 'closed', consecutiveFailures: 0, openUntil: null, changedAt: null });
    assert.equal(closed.body.maintenance.active, true);
    assert.ok(Date.parse(closed.body.maintenance.endsAt) > Date.now());
    assert.equal(closed.body.requestsThisMinute, 0);

    // Two workers' jobs fail on the portal (what gate-step.ts records after each job).
    const gate = ProviderGate.connect(redis);
    await gate.record('acme', 'job-1', 'failure', pacing);
    await gate.record('acme', 'job-2', 'failure', pacing);
    await gate.countRequests('acme', 7);
    const open = (await http('GET', '/api/providers/acme/health')).body;
    assert.equal(open.breaker.state, 'open');
    assert.equal(open.breaker.consecutiveFailures, 2);
    assert.ok(Date.parse(open.breaker.openUntil) > Date.now() + 500_000, open.breaker.openUntil);
    assert.ok(Date.parse(open.breaker.changedAt) <= Date.now());
    assert.equal(open.requestsThisMinute, 7);

    await gate.record('acme', 'job-3', 'success', pacing);
    const again = (await http('GET', '/api/providers/acme/health')).body;
    assert.equal(again.breaker.state, 'closed');
    assert.equal(again.breaker.consecutiveFailures, 0);
  });

  it('lets the operator set a provider\'s pacing through the API, published to the workers at once; nobody else', async () => {
    const next: ProviderPacing = { minSpacingMs: 10_000, maintenanceWindows: [{ days: ['sun'], start: '00:00', end: '06:00', timezone: 'America/Guayaquil' }] };
    const r = await http('PUT', '/api/operator/providers/sri/pacing', next, OPERATOR_TOKEN);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, { providerId: 'sri', pacing: next });
    assert.deepEqual(await readCataloguePacing(redis, 'sri'), { found: true, pacing: next });
    assert.deepEqual(await readCataloguePacing(redis, 'acme'), { found: true, pacing }, 'the others are published as they were');
    const listed = (await http('GET', '/api/providers')).body.providers as { id: string; pacing: ProviderPacing }[];
    assert.deepEqual(listed.find((p) => p.id === 'sri')?.pacing, next);

    const bad = await http('PUT', '/api/operator/providers/sri/pacing', { maintenanceWindows: [{ start: '00:00', end: '06:00', timezone: 'Mars/Olympus' }] }, OPERATOR_TOKEN);
    assert.deepEqual([bad.status, bad.body.error.code], [400, 'VALIDATION_FAILED']);
    const missing = await http('PUT', `/api/operator/providers/${randomUUID()}/pacing`, {}, OPERATOR_TOKEN);
    assert.deepEqual([missing.status, missing.body.error.code], [404, 'PROVIDER_NOT_FOUND']);
    const tenant = await http('PUT', '/api/operator/providers/sri/pacing', {});
    assert.deepEqual([tenant.status, tenant.body.error.code], [403, 'OPERATOR_ONLY']);
    assert.deepEqual(await readCataloguePacing(redis, 'sri'), { found: true, pacing: next }, 'unchanged by the refused calls');
  });

  it('answers PROVIDER_NOT_FOUND for a provider that does not exist', async () => {
    const r = await http('GET', `/api/providers/${randomUUID()}/health`);
    assert.deepEqual([r.status, r.body.error.code], [404, 'PROVIDER_NOT_FOUND']);
  });
});

/** Builds hand-signed job messages and worker configurations for the execution-plane tests. */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { keys } from '../../../src/shared/keys.ts';
import { signEnvelope, signScript } from '../../../src/shared/signing.ts';
import type { JobMessage, Session } from '../../../src/shared/schemas.ts';
import { loadWorkerConfig, type WorkerConfig } from '../../../src/execution-plane/config.ts';
import { TEST_SIGNING_SECRET } from '../../support/services.ts';

/** An organisation id of its own per test, so tests never see each other's queues. */
export const testOrg = (name = 'org') => `t-${name}-${randomUUID().slice(0, 8)}`;

/**
 * A job as the control plane makes it: the script signed with `secret`, the envelope (ids, script hash, creation
 * time) signed with the test signing secret — after `overrides`, so they are covered. Pass
 * `envelopeSignature: undefined` in `overrides` for a job signed by hand without an envelope.
 */
export function signedJob(orgId: string, script: string, overrides: Partial<JobMessage> = {}, secret = TEST_SIGNING_SECRET): JobMessage {
  const { scriptHash, signature } = signScript(script, secret);
  const job: JobMessage = {
    jobId: randomUUID(), orgId, userId: 'user-1', providerId: 'demo', providerName: 'demo', flowId: 'flow-1',
    flowVersion: '1.0.0', scriptContent: script, scriptHash, signature, createdAt: new Date().toISOString(),
    ...overrides,
  };
  if ('envelopeSignature' in overrides) {
    if (job.envelopeSignature === undefined) delete job.envelopeSignature;
  } else {
    job.envelopeSignature = signEnvelope(job, TEST_SIGNING_SECRET);
  }
  return job;
}

export async function setSession(redis: Redis, orgId: string, userId: string, session: Session, providerName = 'demo'): Promise<void> {
  await redis.set(keys.session(orgId, userId, providerName), JSON.stringify(session), 'EX', 3600);
}

export async function push(redis: Redis, orgId: string, message: unknown): Promise<void> {
  await redis.lpush(keys.orgJobs(orgId), typeof message === 'string' ? message : JSON.stringify(message));
}

export function testWorkerConfig(opts: { redisUrl: string; s3Endpoint: string; logDir: string; extra?: Record<string, string> }): WorkerConfig {
  return loadWorkerConfig({
    REDIS_URL: opts.redisUrl, S3_ENDPOINT: opts.s3Endpoint, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET,
    WORKER_ID: `test-worker-${randomUUID().slice(0, 8)}`, WORKER_POLL_INTERVAL: '50', WORKER_MAX_JOBS: '2',
    PLAYWRIGHT_TIMEOUT: '5000', EXECUTION_TIMEOUT: '20000', LOG_DIR: opts.logDir, LOG_LEVEL: 'info',
    // Several test workers (and a developer's own `sri up`) share the machine: any free port for /metrics.
    WORKER_HTTP_PORT: '0',
    ...opts.extra,
  });
}

/** A normal job's script: open the invoices behind the session cookie and report the row count. */
export const NORMAL_SCRIPT = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/invoices');
  helpers.setResult({ rows: await page.locator('#invoices tbody tr').count() });
}
`;

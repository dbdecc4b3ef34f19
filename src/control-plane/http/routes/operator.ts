/**
 * The platform operator's endpoints (OPERATOR_TOKEN, ./operator-guard.ts): worker enrolment and revocation
 * (src/control-plane/workers/enrolments.ts, docs/security.md "Worker enrolment"). They hold no organisation's data.
 * Also keeps enrolled workers' Redis users in step with their records: at start, on every reconnect to Redis and
 * every RECONCILE_INTERVAL_MS (a Redis restarted without its ACL file has lost them).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { DEFAULT_ENROLMENT_TTL_SECONDS, MAX_ENROLMENT_TTL_SECONDS } from '../../../shared/enrolment.ts';
import type { ApiContext } from '../../context.ts';
import { WorkerEnrolments } from '../../workers/enrolments.ts';
import { SriError } from '../../../shared/errors.ts';
import { ProviderPacing } from '../../../shared/provider-pacing.ts';
import type { Database } from '../../db/index.ts';
import type { Redis } from 'ioredis';
import { setProviderAccountConcurrency, setProviderPacing } from '../../db/queries/providers.ts';
import { publishProviderCatalogue, type PublishedCatalogue } from '../../providers/catalogue.ts';
import { operatorOnly } from '../operator-guard.ts';
import { endpoint, json, type ContractTypeProvider } from '../openapi.ts';
import { Enrolment, IdParams, Revoked } from '../schemas.ts';


/** PUT /api/operator/providers/{id}/account-concurrency: 1–100, as the table's check constraint (migration 0012). */
const AccountConcurrency = z.strictObject({ maxConcurrentPerAccount: z.number().int().min(1).max(100) });

export const CreateEnrolmentBody = z.object({
  ttlSeconds: z.number().int().min(1).max(MAX_ENROLMENT_TTL_SECONDS).optional(),
  /** Becomes the prefix of the worker's id (`<name>-<10 hex>`), so `sri workers` shows what it is. */
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'lower-case letters, digits and -, at most 40, starting with a letter or digit').optional(),
}).strict();
export const WorkerIdParams = z.object({ id: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, 'a worker id: A-Z a-z 0-9 _ . -, at most 128') });

export function operatorRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ContractTypeProvider>();
  const preValidation = operatorOnly(ctx);
  const enrolments = new WorkerEnrolments(ctx.redis, ctx.logger);

  r.route({
    ...endpoint('POST', '/api/operator/worker-enrolments', {
      operationId: 'createWorkerEnrolment', tag: 'operator', access: 'operator', body: CreateEnrolmentBody,
      summary: 'Create a one-time worker enrolment token (returned once) and the worker\'s own Redis user (operator only).',
      responses: {
        201: json('The token (shown only now) and the enrolment.', z.object({
          token: z.string().describe('Give it to the worker as WORKER_ENROLMENT_TOKEN; it works once, before it expires.'), enrolment: Enrolment,
        })),
      },
      errors: ['WORKER_ACL_UNAVAILABLE'],
    }),
    preValidation,
    handler: async (req, reply) => {
      const body = req.body;
      const created = await enrolments.create({ ttlSeconds: body.ttlSeconds ?? DEFAULT_ENROLMENT_TTL_SECONDS, ...(body.name ? { name: body.name } : {}) });
      return reply.status(201).send(created);
    },
  });

  r.route({
    ...endpoint('GET', '/api/operator/worker-enrolments', {
      operationId: 'listWorkerEnrolments', tag: 'operator', access: 'operator',
      summary: 'Every enrolment with its status: pending, redeemed, enrolled, expired, revoked (operator only).',
      responses: { 200: json('The enrolments.', z.object({ enrolments: z.array(Enrolment) })) },
    }),
    preValidation,
    handler: async () => ({ enrolments: await enrolments.list() }),
  });

  r.route({
    ...endpoint('POST', '/api/operator/workers/:id/revoke', {
      operationId: 'revokeWorker', tag: 'operator', access: 'operator', params: WorkerIdParams,
      summary: 'Revoke a worker: its Redis user is deleted and its connections killed (enrolled workers), and it is marked revoked (operator only).',
      responses: { 200: json('Revoked.', z.object({ worker: Revoked })) },
      errors: ['WORKER_NOT_FOUND', 'WORKER_ACL_UNAVAILABLE'],
    }),
    preValidation,
    handler: async (req) => ({ worker: await enrolments.revoke(req.params.id) }),
  });

  r.route({
    ...endpoint('PUT', '/api/operator/providers/:id/pacing', {
      operationId: 'setProviderPacing', tag: 'operator', access: 'operator', params: IdParams, body: ProviderPacing,
      summary: 'Set a provider\'s pacing — spacing between job starts, requests per minute, maintenance windows, circuit breaker (docs/providers.md) — and publish it to the workers at once (operator only).',
      responses: { 200: json('The pacing now in force; {} paces nothing.', z.object({ providerId: z.string(), pacing: ProviderPacing })) },
      errors: ['PROVIDER_NOT_FOUND'],
    }),
    preValidation,
    handler: async (req) => {
      const pacing = req.body;
      // The catalogue is global: written as the owning role, like the migrations and registerProvider.
      if (!(await ctx.db.asSystem((tx) => setProviderPacing(tx, req.params.id, pacing)))) throw new SriError('PROVIDER_NOT_FOUND');
      // Published whole, as at start. The signing secret goes along for a publisher that signs providers' login flows
      // (a publisher that takes two arguments ignores it).
      const publish = publishProviderCatalogue as (db: Database, redis: Redis, scriptSigningSecret?: string) => Promise<PublishedCatalogue>;
      await publish(ctx.db, ctx.redis, ctx.config.scriptSigningSecret);
      return { providerId: req.params.id, pacing };
    },
  });

  r.route({
    ...endpoint('PUT', '/api/operator/providers/:id/account-concurrency', {
      operationId: 'setProviderAccountConcurrency', tag: 'operator', access: 'operator', params: IdParams, body: AccountConcurrency,
      summary: 'Set how many jobs of one portal account (organisation, user, provider: one session) may run at once — 1, the default, serialises them (docs/queue.md) — for the jobs submitted from now on (operator only).',
      responses: { 200: json('The limit now in force.', z.object({ providerId: z.string(), maxConcurrentPerAccount: z.number().int() })) },
      errors: ['PROVIDER_NOT_FOUND'],
    }),
    preValidation,
    handler: async (req) => {
      const { maxConcurrentPerAccount } = req.body;
      if (!(await ctx.db.asSystem((tx) => setProviderAccountConcurrency(tx, req.params.id, maxConcurrentPerAccount)))) throw new SriError('PROVIDER_NOT_FOUND');
      return { providerId: req.params.id, maxConcurrentPerAccount };
    },
  });

  // Reconciliation: one at a time; failures are said once per streak (an API whose Redis user has no ACL rights and
  // no enrolments never gets here: reconcile() returns before touching ACL when there are no records).
  let running = false;
  let failing = false;
  const reconcile = () => {
    if (running) return;
    running = true;
    enrolments.reconcile().then(() => { failing = false; }, (err: unknown) => {
      if (!failing) ctx.logger.warn({ err: (err as Error).message }, 'could not reconcile enrolled workers\' Redis users; retrying');
      failing = true;
    }).finally(() => { running = false; });
  };
  let timer: NodeJS.Timeout | undefined;
  app.addHook('onReady', async () => {
    reconcile();
    timer = setInterval(reconcile, ctx.config.reconcileIntervalMs);
    timer.unref();
    ctx.redis.on('ready', reconcile);
  });
  app.addHook('onClose', async () => {
    clearInterval(timer);
    ctx.redis.off('ready', reconcile);
  });
}

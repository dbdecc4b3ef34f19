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
import { operatorOnly } from '../operator-guard.ts';
import { endpoint, json, type ContractTypeProvider } from '../openapi.ts';
import { Enrolment, Revoked } from '../schemas.ts';

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

/** POST /api/run: the HTTP face of submitting a run (jobs/submit.ts). */
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../context.ts';
import { RunAdmission } from '../../jobs/admission.ts';
import { submitRun } from '../../jobs/submit.ts';
import { authOf } from '../auth.ts';
import { endpoint, json, type ContractTypeProvider } from '../openapi.ts';
import { JobStatusAnswer, Queued, RunBody, RunHeaders } from '../schemas.ts';
import { spanOf, tracedRoute } from '../tracing.ts';

export function runRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const admission = new RunAdmission(ctx.redis, ctx.config);
  app.withTypeProvider<ContractTypeProvider>().route({
    ...endpoint('POST', '/api/run', {
      operationId: 'runFlow', tag: 'jobs', access: 'user', body: RunBody, headers: RunHeaders,
      summary: 'Run the active flow of a provider with the caller\'s session; returns the queued job.',
      description: 'Send an `Idempotency-Key` header to make the request safe to repeat: the same key with the same body answers '
        + '200 with the job the first request made (as it is now); with another body, 409 IDEMPOTENCY_CONFLICT.',
      responses: {
        202: json('The job is queued; follow it with GET /api/jobs/{id}/status or /api/jobs/{id}.', Queued),
        200: json('A repeated request (same Idempotency-Key and body): the job the first one made, with its status now.', JobStatusAnswer),
      },
      errors: ['METADATA_TOO_LARGE', 'RATE_LIMITED', 'QUEUE_FULL', 'IDEMPOTENCY_CONFLICT', 'PROVIDER_NOT_FOUND', 'PROVIDER_NOT_CONNECTED',
        'NO_ACTIVE_FLOW', 'FLOW_TAMPERED', 'SECRETS_NOT_CONFIGURED', 'SECRETS_UNREADABLE'],
    }),
    ...tracedRoute(ctx.tracer),
    preValidation: ctx.tokens.hook(),
    handler: async (req, reply) => {
      const { orgId, userId } = authOf(req);
      const submitted = await submitRun(ctx, admission, { orgId, userId, ...req.body, idempotencyKey: req.headers['idempotency-key'] }, { span: spanOf(req), log: req.log });
      return submitted.replayed
        ? reply.status(200).send({ jobId: submitted.jobId, status: submitted.status })
        : reply.status(202).send({ jobId: submitted.jobId, status: submitted.status });
    },
  });
}

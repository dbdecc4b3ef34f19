/** Cancel (POST /api/jobs/{id}/cancel) and retry (POST /api/jobs/{id}/retry): the HTTP face of jobs/control.ts. */
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../context.ts';
import { RunAdmission } from '../../jobs/admission.ts';
import { cancelJob, retryJob } from '../../jobs/control.ts';
import { authOf } from '../auth.ts';
import { endpoint, json, type ContractTypeProvider } from '../openapi.ts';
import { Cancelled, Cancelling, IdParams, Retried } from '../schemas.ts';
import { spanOf, tracedRoute } from '../tracing.ts';

export function jobControlRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ContractTypeProvider>();
  const preValidation = ctx.tokens.hook();
  const admission = new RunAdmission(ctx.redis, ctx.config);

  r.route({
    ...endpoint('POST', '/api/jobs/:id/cancel', {
      operationId: 'cancelJob', tag: 'jobs', access: 'user', params: IdParams,
      summary: 'Cancel a job: a queued one is removed (200, cancelled); a running one is stopped by its worker within 2 s '
        + '(202, cancelling; the job then ends as cancelled); a finished one answers 409 JOB_FINAL.',
      responses: {
        200: json('The job was waiting and will never run; it is recorded as cancelled.', Cancelled),
        202: json('The job is running: its worker stops it within 2 s, and it then ends as cancelled.', Cancelling),
      },
      errors: ['NOT_FOUND', 'JOB_FINAL'],
    }),
    preValidation,
    handler: async (req, reply) => {
      const outcome = await cancelJob(ctx, authOf(req).orgId, req.params.id, req.log);
      return outcome.status === 'cancelling' ? reply.status(202).send(outcome) : reply.status(200).send(outcome);
    },
  });

  r.route({
    ...endpoint('POST', '/api/jobs/:id/retry', {
      operationId: 'retryJob', tag: 'jobs', access: 'user', params: IdParams,
      summary: 'Run a failed or dead job again: same job id, next attempt number, the script re-verified; other statuses answer 409.',
      responses: { 202: json('The job is queued again for its next attempt.', Retried) },
      errors: ['NOT_FOUND', 'JOB_NOT_RETRYABLE', 'RATE_LIMITED', 'QUEUE_FULL', 'PROVIDER_NOT_FOUND', 'PROVIDER_NOT_CONNECTED', 'FLOW_TAMPERED',
        'SECRETS_NOT_CONFIGURED', 'SECRETS_UNREADABLE'],
    }),
    ...tracedRoute(ctx.tracer),
    preValidation,
    handler: async (req, reply) => {
      const { orgId, userId } = authOf(req);
      return reply.status(202).send(await retryJob(ctx, admission, { orgId, userId, id: req.params.id, span: spanOf(req), log: req.log }));
    },
  });
}

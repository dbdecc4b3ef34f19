/**
 * The workers' live configuration (OPERATOR_TOKEN; docs/configuration.md "Live configuration"): read it, and replace
 * it whole with the version read (optimistic concurrency: WORKER_CONFIG_CONFLICT when someone wrote in between).
 * A value the schema refuses is answered VALIDATION_FAILED with its field named in the message and the details, and
 * nothing is written. Every write is audited (who, when, which settings) in keys.workerConfigHistory and the log.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { SriError } from '../../../shared/errors.ts';
import { LiveConfig } from '../../../shared/live-config.ts';
import type { ApiContext } from '../../context.ts';
import { WorkerConfigStore } from '../../workers/worker-config.ts';
import { toSriError } from '../errors.ts';
import { operatorOnly } from '../operator-guard.ts';
import { endpoint, json, type ContractTypeProvider } from '../openapi.ts';

const WorkerConfigAudit = z.object({
  version: z.number().int(), at: z.string(), by: z.string(),
  changed: z.array(z.string()).describe('Dotted paths of the settings that changed (`global.maxJobs`, `providers.sri.retry.maxAttempts`).'),
}).meta({ id: 'WorkerConfigAudit' });

const WorkerConfigAnswer = z.object({
  version: z.number().int().describe('The document\'s version; 0: never written. Send it back with a PUT.'),
  config: LiveConfig,
  updatedAt: z.string().nullable(),
  updatedBy: z.string().nullable().describe('`operator:<first 12 hex of SHA-256 of the token>` (no token is kept).'),
  problem: z.string().optional().describe('Set when the stored document does not validate (written by hand): workers ignore it and keep their last good configuration. A PUT with `version` replaces it.'),
  history: z.array(WorkerConfigAudit).describe('The latest changes, newest first.'),
}).meta({ id: 'WorkerConfig' });

const PutWorkerConfigBody = z.object({
  version: z.number().int().min(0).describe('The version you read (GET); 0 when none was written yet.'),
  config: LiveConfig,
}).strict();


/** The validator's refusal as VALIDATION_FAILED whose message names the first bad field. */
function refusal(err: Error): SriError {
  const known = toSriError(err) ?? new SriError('VALIDATION_FAILED', err.message);
  const first = (known.details as { field: string; message: string }[] | undefined)?.[0];
  if (!first) return known;
  return new SriError('VALIDATION_FAILED', `Invalid worker configuration: ${first.field}: ${first.message}. Nothing was changed; fix the value and send it again (docs/configuration.md "Live configuration").`, { details: known.details });
}

export function workerConfigRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ContractTypeProvider>();
  const preValidation = operatorOnly(ctx);
  const store = new WorkerConfigStore(ctx.redis);
  const answer = async () => ({ ...await store.read(), history: await store.history() });

  r.route({
    ...endpoint('GET', '/api/operator/worker-config', {
      operationId: 'getWorkerConfig', tag: 'operator', access: 'operator',
      summary: 'The workers\' live configuration — jobs at once, retries, breaker threshold, per provider — with its version and latest changes (operator only).',
      responses: { 200: json('The configuration in force.', WorkerConfigAnswer) },
    }),
    preValidation,
    handler: answer,
  });

  r.route({
    ...endpoint('PUT', '/api/operator/worker-config', {
      operationId: 'setWorkerConfig', tag: 'operator', access: 'operator', body: PutWorkerConfigBody,
      summary: 'Replace the workers\' live configuration whole, given the version you read; running workers apply it within seconds (operator only).',
      description: 'The whole document: a setting left out goes back to the workers\' environment value. Refused with VALIDATION_FAILED (the field named) or WORKER_CONFIG_CONFLICT (someone wrote since you read: read again); either way nothing changes.',
      responses: { 200: json('The configuration now in force.', WorkerConfigAnswer) },
      errors: ['WORKER_CONFIG_CONFLICT'],
    }),
    // The body is checked here rather than by the route's validator so that the message names the field.
    attachValidation: true,
    preValidation,
    handler: async (req) => {
      if (req.validationError) throw refusal(req.validationError);
      const by = req.operator!.identity; // operator-guard.ts: the bearer's or the dashboard session's, one identity
      const { audit } = await store.write(req.body.config, req.body.version, by);
      ctx.logger.info({ workerConfigVersion: audit.version, by, changed: audit.changed }, 'workers\' live configuration changed');
      return answer();
    },
  });
}

/**
 * Request schemas of the HTTP API. Handlers parse params, query and body with these (types derive from them);
 * the OpenAPI document is generated from the same schemas.
 */
import { z } from 'zod';
import { STREAM_ENTRY_ID } from '../../shared/log-events.ts';
import { Cookie, JobPriority } from '../../shared/schemas.ts';
import { AnyStep, MAX_STEPS } from '../flows/steps.ts';

const PathId = z.string().min(1).max(128);
/** Attempts a job may make (the first run included). */
export const MAX_ATTEMPTS_LIMIT = 10;
const MaxAttempts = z.number().int().min(1).max(MAX_ATTEMPTS_LIMIT);
export const IdParams = z.object({ id: PathId });

export const RegisterBody = z.object({
  email: z.email().max(254),
  // Strength is checked separately so that a weak password gets its own code (WEAK_PASSWORD).
  password: z.string().min(1).max(1024),
  name: z.string().trim().min(1).max(200),
  orgName: z.string().trim().min(1).max(200),
});
export type RegisterBody = z.infer<typeof RegisterBody>;

export const LoginBody = z.object({ email: z.string().min(1).max(254), password: z.string().min(1).max(1024) });

export const ConnectBody = z.object({
  cookies: z.array(Cookie).max(500),
  credentials: z.record(z.string().min(1).max(64), z.string().max(4096)).optional(),
});

export const CreateFlowBody = z.object({
  providerId: PathId,
  version: z.string().min(1).max(64),
  name: z.string().trim().min(1).max(200),
  description: z.string().max(2000).optional(),
  /** How many times a job of this flow may run (transient failures are retried); a run's maxAttempts wins. */
  maxAttempts: MaxAttempts.optional(),
  // Each step is checked by the compiler, which names the failing step's index (FLOW_INVALID).
  steps: z.array(z.unknown()).max(MAX_STEPS),
});
/** The same body with the step schemas spelt out, for the OpenAPI document only. */
export const CreateFlowBodyDoc = CreateFlowBody.extend({ steps: z.array(AnyStep).max(MAX_STEPS) });

export const RunBody = z.object({
  providerId: PathId,
  metadata: z.record(z.string(), z.unknown()).optional(),
  /** `high` jobs of an organisation are served before its `normal` ones. @default 'normal' */
  priority: JobPriority.optional(),
  /** How many times the job may run; @default the flow's maxAttempts, else the queue's default (3). */
  maxAttempts: MaxAttempts.optional(),
});
export const RunHeaders = z.object({ 'idempotency-key': z.string().min(1).max(200).optional() });

export const JobsQuery = z.object({
  page: z.coerce.number().int().min(1).max(100_000).default(1),
  pageSize: z.coerce.number().int().min(1).max(100).default(20),
});

/** Paging of the dead-letter list. */
export const DlqQuery = z.object({
  offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
  limit: z.coerce.number().int().min(1).max(100).default(20),
});
export const DlqEntryParams = z.object({ entryId: z.string().min(1).max(200) });

/** A quota field: a whole number sets the limit (0 pauses the organisation), null removes it, absent leaves it. */
const QuotaLimit = z.number().int().min(0).max(1_000_000).nullable();
export const QuotaBody = z.object({
  maxConcurrent: QuotaLimit.optional(),
  perMinute: QuotaLimit.optional(),
}).strict();

/** GET /api/jobs/{id}/logs: `follow=false` asks for the stored execution.log even while the live log exists. */
export const LogsQuery = z.object({
  follow: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
});
export const LogsHeaders = z.object({
  accept: z.string().max(1024).optional(),
  /** Sent back by a reconnecting SSE client: the id of the last event it received (a Redis stream entry id). */
  'last-event-id': z.string().max(64).regex(STREAM_ENTRY_ID, 'must be an id this endpoint sent (a Redis stream entry id such as 1700000000000-0)').optional(),
});

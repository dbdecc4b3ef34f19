/**
 * The schemas of the HTTP API: what requests carry and what the API answers. Fastify validates each request with its
 * route's schemas, handlers are typed by them, successful answers are encoded with them, and the OpenAPI document
 * is generated from them (openapi.ts). Schemas with an `id` are components of the document (and named types of the
 * generated client).
 */
import { z } from 'zod';
import { STREAM_ENTRY_ID } from '../../shared/log-events.ts';
import { ModuleRefText } from '../../shared/modules/ref.ts';
import { ArtifactKind, BLOCKER_KINDS, Cookie, JobPriority, JobStatus, RecordMode } from '../../shared/schemas.ts';
import { ProviderPacing } from '../../shared/provider-pacing.ts';
import { MAX_TOTP_SEEDS, TOTP_ALGORITHMS, TOTP_NAME } from '../../shared/totp.ts';
import { AnyStep, MAX_STEPS } from '../flows/steps.ts';
import { WAITING_REASONS } from '../jobs/waiting.ts';

/** One flow step, as docs/scripts.md describes them: a component of the document. */
export const StepSchema = AnyStep.meta({ id: 'Step', description: 'One flow step (docs/scripts.md "Flow steps").' });
/**
 * Step lists are checked by the flow compiler (requests) or were checked when stored (answers), so their schemas
 * accept any item; their `items` in the document are the Step component, which zod copies from this metadata over
 * the `{}` of z.unknown().
 */
const STEPS_DOC = { items: { $ref: '#/components/schemas/Step' } };
/** ISO 8601 date and time in UTC, as the API writes them. */
const Timestamp = z.iso.datetime();

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

/**
 * A TOTP seed as a request carries it. Its base32 is checked by the handler (TotpSeed, src/shared/totp.ts), so that a
 * bad seed gets its own code (TOTP_SEED_INVALID) rather than VALIDATION_FAILED.
 */
const TotpSeedInput = z.union([
  z.string().max(400),
  z.strictObject({
    secret: z.string().max(400),
    algorithm: z.enum(TOTP_ALGORITHMS).optional().describe('@default SHA1'),
    digits: z.number().int().min(6).max(8).optional().describe('@default 6'),
    period: z.number().int().min(10).max(300).optional().describe('Seconds per code. @default 30'),
  }),
]);

export const ConnectBody = z.object({
  cookies: z.array(Cookie).max(500),
  credentials: z.record(z.string().min(1).max(64), z.string().max(4096)).optional(),
  totp: z.record(z.string().regex(TOTP_NAME, 'must be 1-64 characters of A-Z a-z 0-9 _ . -'), TotpSeedInput)
    .refine((t) => Object.keys(t).length <= MAX_TOTP_SEEDS, `at most ${MAX_TOTP_SEEDS} seeds`).optional()
    .describe('TOTP seeds by name, base32 as the portal showed them (or with algorithm, digits, period): a flow\'s fill {selector, totp: name} step and helpers.fillTotp type the current code. Stored sealed with the session; never shown again.'),
});

const RECORD_DOC = 'Keep a Playwright trace (trace.zip: screenshots and DOM snapshots, cookies and typed secrets removed) and a video (video.webm) of the job\'s page as evidence: onFailure when the job fails, always on every outcome, none never (docs/scripts.md "Recordings").';

export const CreateFlowBody = z.object({
  providerId: PathId,
  version: z.string().min(1).max(64),
  name: z.string().trim().min(1).max(200),
  description: z.string().max(2000).optional(),
  /** How many times a job of this flow may run (transient failures are retried); a run's maxAttempts wins. */
  maxAttempts: MaxAttempts.optional(),
  // Each step is checked by the compiler, which names the failing step's index (FLOW_INVALID), so the schema lets any
  // item through; the document shows the step schemas (`items`, below).
  steps: z.array(z.unknown()).max(MAX_STEPS).meta(STEPS_DOC).optional(),
  /** Instead of steps: a module bundle (docs/modules.md) its jobs run, resolved by the worker when each job starts. */
  module: ModuleRefText.optional().describe('A module bundle its jobs run instead of compiled steps: name@version or name@range (e.g. "invoices@^1"); the worker resolves the range when each job starts (docs/modules.md).'),
  record: RecordMode.optional().describe(RECORD_DOC),
}).refine((b) => (b.steps === undefined) !== (b.module === undefined), { message: 'give either steps or module', path: ['steps'] });

export const RunBody = z.object({
  providerId: PathId,
  metadata: z.record(z.string(), z.unknown()).optional(),
  /** `high` jobs of an organisation are served before its `normal` ones. @default 'normal' */
  priority: JobPriority.optional(),
  /** How many times the job may run; @default the flow's maxAttempts, else the queue's default (3). */
  maxAttempts: MaxAttempts.optional(),
  /** A recording of this run's page; @default the flow's `record`, else none. */
  record: RecordMode.optional().describe(`${RECORD_DOC} Overrides the flow's setting for this run.`),
});
export const RunHeaders = z.object({
  'idempotency-key': z.string().min(1).max(200).optional()
    .describe('Makes the request safe to repeat: the same key and body answer the job the first request made; another body, IDEMPOTENCY_CONFLICT.'),
});

/** An instant of the jobs filter: an ISO 8601 date and time with its offset, or a date (00:00 UTC of that day). */
const FilterInstant = z.union([z.iso.datetime({ offset: true }), z.iso.date()]);
export const JobsQuery = z.object({
  page: z.coerce.number().int().min(1).max(100_000).default(1).describe('The page, from 1.'),
  pageSize: z.coerce.number().int().min(1).max(100).default(20).describe('Jobs per page.'),
  status: z.union([JobStatus, z.array(JobStatus).min(1).max(JobStatus.options.length)]).optional()
    .describe('Only jobs in this status; repeat the parameter for several (`status=failed&status=dead`).'),
  providerId: PathId.optional().describe('Only jobs of this provider.'),
  from: FilterInstant.optional().describe('Only jobs created at or after this instant (ISO 8601 date-time with offset, or a date: 00:00 UTC).'),
  to: FilterInstant.optional().describe('Only jobs created before this instant (exclusive; same forms as `from`).'),
}).refine((q) => q.from === undefined || q.to === undefined || Date.parse(q.from) < Date.parse(q.to),
  { message: 'must be later than from', path: ['to'] });

/** Paging of the dead-letter list. */
export const DlqQuery = z.object({
  offset: z.coerce.number().int().min(0).max(1_000_000).default(0).describe('Entries to skip, newest first.'),
  limit: z.coerce.number().int().min(1).max(100).default(20).describe('Entries per page.'),
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
  follow: z.enum(['true', 'false']).default('true').describe('false: the stored execution.log, even while the job runs (LOG_NOT_READY until it has one).')
    .transform((v) => v === 'true'),
});
export const LogsHeaders = z.object({
  accept: z.string().max(1024).optional()
    .describe('text/event-stream asks for the live events of a finished job while they are still in Redis; a running job streams them whatever it says.'),
  /** Sent back by a reconnecting SSE client: the id of the last event it received (a Redis stream entry id). */
  'last-event-id': z.string().max(64).regex(STREAM_ENTRY_ID, 'must be an id this endpoint sent (a Redis stream entry id such as 1700000000000-0)').optional()
    .describe('The id of the last event received: the stream resumes after it (EventSource sends it when it reconnects).'),
});

// ── Answers ─────────────────────────────────────────────────────────────────────────────────────────────────────────

export const User = z.object({
  id: z.string(), email: z.string(), name: z.string(), orgId: z.string(),
  role: z.enum(['admin', 'member']).describe('admin: the user who registered the organisation; member: users added later.'),
}).meta({ id: 'User' });
export const Organisation = z.object({ id: z.string(), name: z.string() }).meta({ id: 'Organisation' });
export const Identity = z.object({ user: User, org: Organisation });
export const TokenAnswer = Identity.extend({
  token: z.string().describe('Send it as "Authorization: Bearer <token>"; it expires after JWT_EXPIRES_IN_SECONDS (an hour by default).'),
});

const Role = z.enum(['admin', 'member']);
export const Member = z.object({
  id: z.string(), email: z.string(), name: z.string(),
  role: Role.describe('admin: manages members, dead letters, quotas, webhooks and secrets; member: runs flows.'),
  status: z.enum(['active', 'invited']).describe('invited: added with an invitation link that has not been accepted yet (no password).'),
  invitationExpiresAt: Timestamp.nullable().describe('When the pending invitation link stops working; null when there is none.'),
  createdAt: Timestamp,
}).meta({ id: 'Member' });
export const CreateMemberBody = z.object({
  email: z.email().max(254),
  name: z.string().trim().min(1).max(200),
  role: Role.default('member'),
  password: z.string().min(1).max(1024).optional()
    .describe('An initial password (checked like any other: WEAK_PASSWORD). Without it the answer carries a one-time invitation link token.'),
}).strict();
export const UpdateMemberBody = z.object({ role: Role }).strict();
export const Invitation = z.object({
  token: z.string().describe('Shown this once (only its SHA-256 is kept): the dashboard\'s link is /invitation#<token>; POST /api/invitations/accept takes it.'),
  expiresAt: Timestamp,
}).meta({ id: 'Invitation' });
export const AcceptInvitationBody = z.object({
  token: z.string().min(1).max(200),
  password: z.string().min(1).max(1024),
}).strict();

export const Provider = z.object({
  id: z.string(), name: z.string(), displayName: z.string(),
  allowedHosts: z.array(z.string()).describe('The hosts its flows may visit (`*.` matches subdomains).'),
  pacing: ProviderPacing.meta({ id: 'ProviderPacing' })
    .describe('How fast and when the platform uses the portal, all organisations together: spacing between job starts, a requests-per-minute ceiling, maintenance windows, the circuit breaker (docs/providers.md). {} paces nothing.'),
  maxConcurrentPerAccount: z.number().int().min(1).max(100)
    .describe('How many jobs of one portal account (a user on this provider) run at once; the next ones wait in the queue, neither failed nor holding a worker (docs/queue.md). 1 by default.'),
}).meta({ id: 'Provider' });
export const ProviderHealth = z.object({
  providerId: z.string(), providerName: z.string(),
  breaker: z.object({
    enabled: z.boolean().describe('Whether the provider has a circuit breaker (pacing.breaker).'),
    state: z.enum(['closed', 'open', 'half_open'])
      .describe('closed: jobs start; open: new jobs wait (deferred, no attempt counted) until openUntil; half_open: one job tries, its success closes the breaker.'),
    consecutiveFailures: z.number().int().describe('Infrastructure failures in a row (NAVIGATION_ERROR, PORTAL_UNAVAILABLE).'),
    openUntil: Timestamp.nullable().describe('While open: when one job may try again.'),
    changedAt: Timestamp.nullable().describe('When the breaker last changed state.'),
  }),
  maintenance: z.object({
    active: z.boolean().describe('Now inside a maintenance window: jobs of the provider wait until it ends.'),
    endsAt: Timestamp.nullable(),
  }),
  nextStartAt: Timestamp.nullable().describe('No job of the provider starts before this (its spacing); null: one may start now.'),
  requestsThisMinute: z.number().int().describe('Browser requests of the provider\'s jobs in the current clock minute, all organisations.'),
}).meta({ id: 'ProviderHealth' });
export const Connection = z.object({
  providerId: z.string(), providerName: z.string(), connectedAt: Timestamp, expiresAt: Timestamp,
  status: z.enum(['connected', 'expired']).describe('expired: a job found the portal logged out and no login flow could sign in again (SESSION_EXPIRED); connect again'),
  expiredAt: Timestamp.nullable().describe('When the connection was found expired; null while it works.'),
}).meta({ id: 'Connection' });
export const Connected = z.object({ providerId: z.string(), connected: z.literal(true), expiresAt: Timestamp });
export const Disconnected = z.object({ providerId: z.string(), connected: z.literal(false) });

export const Flow = z.object({
  id: z.string(), providerId: z.string(), version: z.string(), name: z.string(), description: z.string().nullable(),
  steps: z.array(z.unknown()).meta(STEPS_DOC),
  scriptHash: z.string().describe('SHA-256 of the compiled script, lower-case hex.'),
  signature: z.string().describe('HMAC-SHA256 of the script under SCRIPT_SIGNING_SECRET, lower-case hex.'),
  scriptKey: z.string().describe('The script\'s key in the scripts bucket.'),
  active: z.boolean(),
  maxAttempts: z.number().int().nullable().describe('Attempts a job of this flow may make; null: the queue\'s default.'),
  module: z.string().optional().describe('The module bundle the flow runs (name@range), for a flow made with module instead of steps.'),
  record: RecordMode.describe('When its jobs keep a trace and a video of the page (docs/scripts.md "Recordings"); none unless set.'),
  createdAt: Timestamp,
}).meta({ id: 'Flow' });
export const FlowWithScript = Flow.extend({ script: z.string().describe('The compiled, signed script (an ES module).') }).meta({ id: 'FlowWithScript' });

export const Job = z.object({
  id: z.string(), status: JobStatus, providerId: z.string(), flowId: z.string(), flowVersion: z.string(),
  attempt: z.number().int().describe('The attempt running or last run, from 1.'),
  priority: JobPriority,
  maxAttempts: z.number().int().nullable(),
  createdAt: Timestamp, finishedAt: Timestamp.nullable(),
  duration: z.number().nullable().describe('Milliseconds the last attempt ran.'),
  error: z.object({ code: z.string().describe('A job failure code of docs/errors.md.'), message: z.string() }).nullable(),
  workerId: z.string().nullable(),
  userId: z.string().describe('The user who ran it.'),
  schedule: z.object({ id: z.string(), dueAt: Timestamp }).nullable()
    .describe('The schedule and due time this job was made for (docs/schedules.md); null for a run started by hand.'),
}).meta({ id: 'Job' });
export const Artifact = z.object({
  kind: ArtifactKind, name: z.string(), uri: z.string().describe('s3://bucket/key'),
  url: z.string().describe('A presigned download link, valid for ARTIFACT_URL_TTL_SECONDS.'),
  bytes: z.number().int().optional(), sha256: z.string().optional().describe('Of the stored bytes, lower-case hex.'), contentType: z.string().optional(),
}).meta({ id: 'Artifact' });
export const JobBlocker = z.object({
  kind: z.enum(BLOCKER_KINDS).describe('login-wall, captcha, rate-limit, maintenance or access-denied.'),
  url: z.string().describe('The page, without query or fragment.'),
  evidence: z.string().describe('The rule that matched: a status code, the phrase found, the widget or marker seen.'),
});
export const JobDetail = Job.extend({
  waiting: z.object({
    reason: z.enum(WAITING_REASONS).describe('account: another run of the same portal account (organisation, user, provider) is under way, and the provider allows maxConcurrentPerAccount at once; maintenance, breaker, rate, spacing: the provider\'s gate holds it (docs/providers.md).'),
    until: Timestamp.optional().describe('When the provider\'s gate lets it try again (not for account: it starts when the other run ends).'),
  }).nullable().describe('Why a queued job has not started; null when it only waits for its turn (or is not queued).'),
  result: z.unknown().describe('The parsed data the flow set (parsed-data.json); null until the job has some.'),
  artifacts: z.array(Artifact),
  blocker: JobBlocker.nullable().describe('The last blocker an attempt of this run met — a login wall, CAPTCHA, rate limit, maintenance or access-denied page (docs/scripts.md "Blockers"); kept when a later attempt met none; null when no attempt met one.'),
}).meta({ id: 'JobDetail' });
// An intersection rather than Job.extend(): the list's items stay a Job (the component clients name) plus what the
// list adds.
export const JobListItem = z.intersection(Job, z.object({
  userName: z.string().nullable().describe('The name of the user who ran it (also when they have since been removed from the organisation).'),
})).meta({ id: 'JobListItem' });
export const JobList = z.object({
  jobs: z.array(JobListItem), page: z.number().int(), pageSize: z.number().int(),
  total: z.number().int().describe('Jobs matching the filters, on every page.'),
});
export const JobStatusAnswer = z.object({ jobId: z.string(), status: JobStatus });
export const Queued = z.object({ jobId: z.string(), status: z.literal('queued') });
export const Cancelled = z.object({ jobId: z.string(), status: z.literal('cancelled') });
export const Cancelling = z.object({ jobId: z.string(), status: z.literal('cancelling') });
export const Retried = Queued.extend({ attempt: z.number().int().describe('The attempt this retry runs.') });

const DeadLetterFields = z.object({
  id: z.string(), orgId: z.string(), jobId: z.string().nullable(), reason: z.string(), at: Timestamp,
  truncated: z.boolean().describe('The message was larger than the list keeps: only its start is here, and it cannot be requeued.'),
  rawBytes: z.number().int(),
});
export const DeadLetterSummary = DeadLetterFields.extend({ preview: z.string().describe('The start of the raw message.') }).meta({ id: 'DeadLetterSummary' });
export const DeadLetter = DeadLetterFields.extend({ raw: z.string().describe('The raw message as it was pushed (truncated when huge).') }).meta({ id: 'DeadLetter' });
export const Quota = z.object({
  orgId: z.string(),
  maxConcurrent: z.number().int().nullable().describe('Jobs of the organisation running at once; null: no limit.'),
  perMinute: z.number().int().nullable().describe('Jobs of the organisation started per minute; null: no limit.'),
}).meta({ id: 'Quota' });

export const Secret = z.object({
  name: z.string(), keyId: z.string().describe('The SECRETS_KEYS key that sealed it.'), createdAt: Timestamp, updatedAt: Timestamp,
}).meta({ id: 'Secret' });
export const SecretAuditEvent = z.object({
  id: z.string(), name: z.string(), action: z.string().describe('created, updated, deleted, or sent (to a job).'),
  jobId: z.string().nullable(), userId: z.string().nullable(), at: Timestamp,
}).meta({ id: 'SecretAuditEvent' });

const WorkerState = z.enum(['starting', 'ready', 'busy', 'reconnecting', 'draining', 'stopped', 'lost']);
const ResourceUsage = z.object({
  source: z.enum(['cgroup-v2', 'cgroup-v1', 'process']),
  sampledAt: z.number(),
  cpu: z.object({ usageSeconds: z.number(), percent: z.number().nullable(), limitCores: z.number().nullable() }),
  memory: z.object({ usedBytes: z.number(), limitBytes: z.number().nullable() }),
  process: z.object({ rssBytes: z.number(), heapUsedBytes: z.number() }),
  system: z.object({ cpus: z.number(), loadAverage1m: z.number(), totalMemoryBytes: z.number(), freeMemoryBytes: z.number() }),
});
export const Worker = z.object({
  workerId: z.string(),
  state: WorkerState.describe('busy: running jobs of your organisation; ready: none of yours (it may be running other organisations\' jobs).'),
  reportedState: WorkerState.exclude(['lost']).nullable(),
  startedAt: Timestamp.nullable(), lastHeartbeat: Timestamp.nullable(), heartbeatAgeMs: z.number().nullable(), heartbeatIntervalMs: z.number(),
  maxJobs: z.number().int().nullable(),
  jobsInFlight: z.number().int().describe('Your organisation\'s jobs leased to it now.'),
  jobs: z.array(z.object({ jobId: z.string().nullable(), orgId: z.string(), attempt: z.number().int(), takenAt: Timestamp.nullable() })),
  resources: ResourceUsage.nullable(),
  sandbox: z.string().nullable()
    .describe('How the worker isolates scripts: `sandbox-bwrap` (bubblewrap namespaces) or the weaker `sandbox-process`; null before its first heartbeat.'),
}).meta({ id: 'Worker' });
const Count = z.number().int();
export const WorkerList = z.object({
  workers: z.array(Worker),
  counts: z.object({ starting: Count, ready: Count, busy: Count, reconnecting: Count, draining: Count, stopped: Count, lost: Count })
    .describe('Workers in each state, as your organisation sees them.'),
});

export const Enrolment = z.object({
  workerId: z.string(), name: z.string().nullable(), redisUser: z.string(),
  status: z.enum(['pending', 'redeemed', 'enrolled', 'expired', 'revoked']),
  createdAt: Timestamp, expiresAt: Timestamp, revokedAt: Timestamp.nullable(),
}).meta({ id: 'Enrolment' });
export const Revoked = z.object({
  workerId: z.string(), revokedAt: Timestamp,
  enforced: z.boolean().describe('True when the worker had its own Redis user (now deleted); false: only marked, the worker stops itself.'),
});

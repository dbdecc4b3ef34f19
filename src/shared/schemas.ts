/**
 * Messages that cross the Redis boundary between the planes (ARCHITECTURE.md "Job message", "Result message",
 * sessions). Both planes validate with these schemas; the TypeScript types are derived from them.
 */
import { z } from 'zod';
import { ModuleRefText } from './modules/ref.ts';
import { TotpSeed } from './totp.ts';

/** Ids end up in Redis keys and S3 keys: no separators, no path tricks. */
export const Id = z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, 'must be 1-128 characters of A-Z a-z 0-9 _ . -')
  .refine((s) => s !== '.' && s !== '..', 'must not be "." or ".."');
export const ProviderName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be lower-case letters, digits, _ or -');
const Hex64 = z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex characters');
/**
 * W3C trace context (src/shared/tracing.ts): the span the message continues. Observability data only — not part of
 * the signed job envelope; a message without it runs in a trace of its own.
 */
export const Traceparent = z.string().regex(/^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/, 'must be a W3C traceparent: 00-<32 hex>-<16 hex>-<2 hex>, lower case');
export const Hostname = z.string().regex(/^(\*\.)?[a-z0-9.-]{1,253}(:\d{1,5})?$/i, 'must be a host name (optionally *.domain or host:port)');

export const JobPriority = z.enum(['normal', 'high']);

/**
 * When the worker keeps a Playwright trace (trace.zip) and a video (video.webm) of the job's page
 * (src/execution-plane/job/recording.ts, docs/scripts.md "Recordings"): `onFailure` when the job fails, `always` on
 * every outcome, `none` never. A flow's setting, overridden by a run's.
 */
export const RecordMode = z.enum(['none', 'onFailure', 'always']);
export type RecordMode = z.infer<typeof RecordMode>;

export const JobMessage = z.object({
  jobId: Id,
  orgId: Id,
  userId: Id,
  providerId: Id,
  providerName: ProviderName,
  flowId: Id,
  flowVersion: z.string().min(1).max(64),
  /** Inline script text; may be omitted when scriptKey names it in the scripts bucket. */
  scriptContent: z.string().max(1024 * 1024).optional(),
  scriptHash: Hex64,
  signature: Hex64,
  createdAt: z.union([z.string().min(1).max(64), z.number()]),
  scriptKey: z.string().regex(/^scripts\/[A-Za-z0-9_.\/-]{1,512}$/).refine((k) => !k.includes('..'), 'must not contain ..').optional(),
  metadata: z.record(z.string(), z.unknown()).optional(),
  traceId: z.string().max(128).optional(),
  priority: JobPriority.optional(),
  attempt: z.number().int().min(1).max(1000).optional(),
  maxAttempts: z.number().int().min(1).max(100).optional(),
  timeoutMs: z.number().int().min(1000).max(24 * 3600 * 1000).optional(),
  allowedHosts: z.array(Hostname).max(100).optional(),
  /** HMAC of the envelope (src/shared/signing.ts envelopeText); required by workers with REQUIRE_JOB_SIGNATURE. */
  envelopeSignature: Hex64.optional(),
  /** Tenant secrets the flow references, sealed under TRANSPORT_KEYS for this job's ids (transport-secrets.ts). */
  secrets: z.string().startsWith('sri-enc:v1:').max(256 * 1024).optional(),
  /** The enqueue span of the control plane (or of any producer): the worker's spans are its children. Unsigned. */
  traceparent: Traceparent.optional(),
  /** The schedule and due time (ISO 8601) a scheduled run was made for (docs/schedules.md). Unsigned, informational. */
  scheduleId: Id.optional(),
  dueAt: z.string().min(1).max(64).optional(),
  /**
   * How many jobs of this job's portal account (organisation, user, provider: the session it uses) may run at once;
   * absent = 1. The control plane sets it from the provider catalogue; the take script reads it (docs/queue.md "One
   * run at a time per portal account"). Unsigned: it only orders jobs, as the queue lists themselves do.
   */
  maxConcurrentPerAccount: z.number().int().min(1).max(100).optional(),
  /**
   * A module bundle to run instead of a script: `name@version` or `name@range` (docs/modules.md). The worker resolves
   * the range when it takes the job. `scriptHash` and `signature` then cover the text `sri-module:{module}`
   * (modules/ref.ts moduleRefScript), so the reference is signed and, through scriptHash, in the job envelope.
   */
  module: ModuleRefText.optional(),
  /**
   * Keep a trace and a video of the job's page (RecordMode); absent = none, so messages made before it stay valid.
   * Unsigned, like scheduleId: it changes nothing about what runs, under which ids or with which session, and what it
   * adds lands under the job's own results prefix, redacted and size-bounded (docs/security.md "Job envelope").
   */
  record: RecordMode.optional(),
}).refine((j) => j.scriptContent !== undefined || j.scriptKey !== undefined || j.module !== undefined, {
  message: 'either scriptContent, scriptKey or module is required', path: ['scriptContent'],
}).refine((j) => j.module === undefined || (j.scriptContent === undefined && j.scriptKey === undefined), {
  message: 'a job names either a module or a script (scriptContent, scriptKey), not both', path: ['module'],
});
export type JobMessage = z.infer<typeof JobMessage>;

/**
 * `waiting_for_user`: a hand-off (src/shared/handoff.ts) — the job holds its lease and its browser while a person
 * answers in the live view; it goes back to `running` when they do. Not terminal.
 */
export const JobStatus = z.enum(['queued', 'running', 'done', 'failed', 'retrying', 'cancelled', 'dead', 'waiting_for_user']);
export type JobStatus = z.infer<typeof JobStatus>;
export const TERMINAL_STATUSES: readonly JobStatus[] = ['done', 'failed', 'cancelled', 'dead'];

export const ResultFiles = z.object({
  log: z.string(),
  screenshots: z.array(z.string()),
  download: z.string().optional(),
  parsedData: z.string().optional(),
});
export type ResultFiles = z.infer<typeof ResultFiles>;

/** What an evidence file is: the kinds `GET /api/jobs/{id}` lists under `artifacts`. */
export const ArtifactKind = z.enum(['log', 'screenshot', 'download', 'parsedData', 'failure', 'trace', 'video']);
export type ArtifactKind = z.infer<typeof ArtifactKind>;

/**
 * One evidence file as stored (ARCHITECTURE.md "Result message"): its object, size and the SHA-256 of its bytes as
 * uploaded — for downloads and screenshots, the bytes the portal served (docs/security.md "Evidence and redaction").
 */
export const ResultArtifact = z.object({
  name: z.string().min(1).max(255),
  kind: ArtifactKind,
  uri: z.string().max(2048),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex characters'),
  contentType: z.string().max(255),
});
export type ResultArtifact = z.infer<typeof ResultArtifact>;

/** Kinds of blocker a worker tells apart (src/execution-plane/job/blocker.ts). */
export const BLOCKER_KINDS = ['login-wall', 'captcha', 'rate-limit', 'maintenance', 'access-denied'] as const;
export type BlockerKind = (typeof BLOCKER_KINDS)[number];
export const ResultBlocker = z.object({
  kind: z.enum(BLOCKER_KINDS),
  url: z.string().max(2048),
  evidence: z.string().max(300),
});
export type ResultBlocker = z.infer<typeof ResultBlocker>;

export const ResultMessage = z.object({
  jobId: z.string(),
  orgId: z.string(),
  userId: z.string(),
  providerId: z.string(),
  success: z.boolean(),
  status: JobStatus,
  duration: z.number(),
  attempt: z.number().int(),
  workerId: z.string(),
  finishedAt: z.string(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  files: ResultFiles,
  /**
   * Every evidence file with its size and hash (`files` stays, naming the same objects, for older readers). A
   * malformed list is dropped, never the result with it.
   */
  artifacts: z.array(ResultArtifact).optional().catch(undefined),
  /** The live log of this attempt: lines streamed, and lines/batches dropped because Redis fell behind. */
  logs: z.object({ written: z.number().int(), droppedLines: z.number().int(), droppedBatches: z.number().int() }).optional(),
  /**
   * The connection's session was saved with renewed cookies and its lifetime started again: it lasts until then
   * (ISO time). The control plane moves the connection's expiry to it. A malformed one is dropped.
   */
  session: z.object({ renewedUntil: z.iso.datetime() }).optional().catch(undefined),
  /**
   * The job browser's traffic through the worker's egress proxy (docs/security.md "Egress"); absent when no browser
   * ran. A malformed one is dropped, never the result with it.
   */
  egress: z.object({
    /** Refused requests and connections by host and reason, most frequent first; at most 50 entries. */
    blocked: z.array(z.object({ host: z.string(), reason: z.string(), count: z.number().int() })),
    /** Every refusal, those of hosts beyond the entries listed included. */
    blockedTotal: z.number().int(),
    /** Bytes moved through the proxy, both directions, plus files made in the page (blob:/data: downloads). */
    bytes: z.number().int(),
    /** The limit the job went over (its connections were cut): `egress-bytes`. */
    limitExceeded: z.string().optional(),
  }).optional().catch(undefined),
  /**
   * The worker's `publish` span: the control plane records the result in a child of it (same trace). A malformed
   * one is dropped, never the result with it.
   */
  traceparent: Traceparent.optional().catch(undefined),
  /**
   * With status `waiting_for_user` only (published, never stored as the job's result): why the job waits and until
   * when (epoch ms). A malformed one is dropped, never the message with it.
   */
  handoff: z.object({ reason: z.string().max(500), expiresAt: z.number().int() }).optional().catch(undefined),
  /**
   * What stood between the job and its page (docs/scripts.md "Blockers"): the last or decisive blocker the worker
   * classified after a navigation or at the failure. Redacted: the URL without query or fragment, short evidence.
   * A malformed one is dropped, never the result with it; results of older workers have none.
   */
  blocker: ResultBlocker.optional().catch(undefined),
});
export type ResultMessage = z.infer<typeof ResultMessage>;
export type ResultEgress = NonNullable<ResultMessage['egress']>;

export const Cookie = z.object({
  name: z.string().min(1).max(4096),
  value: z.string().max(16384),
  domain: z.string().max(253).optional(),
  path: z.string().max(1024).optional(),
  url: z.string().max(2048).optional(),
  expires: z.number().optional(),
  httpOnly: z.boolean().optional(),
  secure: z.boolean().optional(),
  sameSite: z.enum(['Strict', 'Lax', 'None']).optional(),
});
export type Cookie = z.infer<typeof Cookie>;

export const Session = z.object({
  cookies: z.array(Cookie).max(500),
  credentials: z.record(z.string(), z.string()).optional(),
  /** TOTP seeds by name (src/shared/totp.ts): `helpers.fillTotp` types their current code; never sent to the script. */
  totp: z.record(z.string(), TotpSeed).optional(),
  connectedAt: z.number().optional(),
  /**
   * The connection's lifetime (SESSION_TTL_SECONDS when it was connected). A worker that saves cookies the portal
   * renewed starts it again (docs/sessions.md), so a connection in regular use does not run out.
   */
  ttlSeconds: z.number().int().min(1).max(366 * 86_400).optional(),
});
export type Session = z.infer<typeof Session>;

/** Renders a zod error as one line per problem: `path: message`. */
export function describeZodError(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
}

/**
 * The operations worker's contract with the control plane (docs/operations.md): the task message the API enqueues on
 * `sri:ops:jobs`, the result message the ops worker writes to `sri:ops:results` (announced on `sri:ops:done`), and the
 * audit record of each step. Validated on both sides.
 */
import { z } from 'zod';

/** A tag or semver version of the platform's images: what `docker pull repo:<it>` accepts. */
export const ImageTag = z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, 'an image tag: letters, digits, _ . -, at most 128');
/** A compose service name. */
export const ServiceName = z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/, 'a compose service name');

export const OPS_TASK_KINDS = ['system.update', 'system.check'] as const;
export const OpsTaskKind = z.enum(OPS_TASK_KINDS);
export type OpsTaskKind = z.infer<typeof OpsTaskKind>;

export const OPS_STATUSES = ['queued', 'running', 'done', 'failed', 'interrupted'] as const;
export const OpsStatus = z.enum(OPS_STATUSES);
export type OpsStatus = z.infer<typeof OpsStatus>;
export const OPS_FINAL_STATUSES: readonly OpsStatus[] = ['done', 'failed', 'interrupted'];
export const isFinalOpsStatus = (s: string | undefined): boolean => s !== undefined && (OPS_FINAL_STATUSES as readonly string[]).includes(s);

export const SystemUpdateParams = z.strictObject({
  /** The version (image tag) to run; absent: the newest the registry offers. */
  targetVersion: ImageTag.optional(),
  /** Run `sri migrate` in the API's new image (a one-off container) after the services are up. */
  runMigrations: z.boolean().default(false),
  /** The compose services to update; absent: every service of the compose file. */
  services: z.array(ServiceName).min(1).max(50).optional(),
});
export type SystemUpdateParams = z.infer<typeof SystemUpdateParams>;

export const SystemCheckParams = z.strictObject({});

/** Who asked, as the API saw it: the operator token's fingerprint, never the token. */
export const RequestedBy = z.strictObject({
  /** `operator:<first 12 hex of SHA-256(OPERATOR_TOKEN)>`. */
  identity: z.string().max(200),
  address: z.string().max(100).optional(),
  userAgent: z.string().max(300).optional(),
});
export type RequestedBy = z.infer<typeof RequestedBy>;

export const OpsTaskMessage = z.discriminatedUnion('kind', [
  z.strictObject({ taskId: z.uuid(), kind: z.literal('system.update'), params: SystemUpdateParams, requestedBy: RequestedBy, requestedAt: z.iso.datetime() }),
  z.strictObject({ taskId: z.uuid(), kind: z.literal('system.check'), params: SystemCheckParams, requestedBy: RequestedBy, requestedAt: z.iso.datetime() }),
]);
export type OpsTaskMessage = z.infer<typeof OpsTaskMessage>;

/** One step as the audit keeps it: what ran, its exit code, how long, how it ended, the tail of its output. */
export const OpsStepRecord = z.object({
  name: z.string(),
  /** What the step does, in words and the commands it runs (never a secret: those travel on stdin). */
  command: z.string(),
  startedAt: z.iso.datetime(),
  durationMs: z.number().int().nonnegative(),
  exitCode: z.number().int().nullable(),
  outcome: z.enum(['ok', 'failed', 'timeout', 'aborted']),
  outputTail: z.array(z.string()),
});
export type OpsStepRecord = z.infer<typeof OpsStepRecord>;

export const OpsError = z.object({
  code: z.string(),
  message: z.string(),
  /** The step that failed. */
  step: z.string().optional(),
  /** The last lines of its output. */
  outputTail: z.array(z.string()).optional(),
});

/** What the task found or did: versions before and after, what the registry offers, whether it rolled back. */
export const OpsOutcomeDetails = z.object({
  runningVersion: z.string().nullable().optional(),
  targetVersion: z.string().optional(),
  latestVersion: z.string().nullable().optional(),
  updateAvailable: z.boolean().optional(),
  availableVersions: z.array(z.string()).optional(),
  services: z.array(z.string()).optional(),
  rolledBack: z.boolean().optional(),
  rollbackHealthy: z.boolean().optional(),
});

export const OpsResultMessage = z.object({
  taskId: z.uuid(),
  kind: OpsTaskKind,
  status: z.enum(['done', 'failed', 'interrupted']),
  workerId: z.string(),
  startedAt: z.iso.datetime().optional(),
  finishedAt: z.iso.datetime(),
  steps: z.array(OpsStepRecord),
  details: OpsOutcomeDetails.optional(),
  error: OpsError.optional(),
});
export type OpsResultMessage = z.infer<typeof OpsResultMessage>;

/**
 * Turns a raw queue message into a JobMessage, or into a precise description of what is wrong with it plus the
 * ids that can still be trusted to report the failure (invariant 8: a bad message gets a clear error, never a
 * crash, never silence).
 */
import { describeZodError, Id, JobMessage } from '../../shared/schemas.ts';

export type ParsedMessage =
  | { ok: true; job: JobMessage }
  | {
    ok: false;
    reason: string;
    /** Present only when the failure can be reported to the organisation (jobId valid, orgId = the queue's). */
    report?: { jobId: string; orgId: string; userId: string; providerId: string; attempt: number };
  };

const asId = (v: unknown): string | undefined => (Id.safeParse(v).success ? (v as string) : undefined);

export function parseJobMessage(raw: string, queueOrgId: string): ParsedMessage {
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch (e) {
    return { ok: false, reason: `not valid JSON: ${(e as Error).message.slice(0, 200)}` };
  }
  const r = JobMessage.safeParse(data);
  if (r.success && r.data.orgId === queueOrgId) return { ok: true, job: r.data };

  const reason = r.success
    ? `orgId: is "${r.data.orgId}" but the message was pushed to the queue of organisation "${queueOrgId}"`
    : describeZodError(r.error);
  const obj = (typeof data === 'object' && data !== null && !Array.isArray(data) ? data : {}) as Record<string, unknown>;
  const jobId = asId(obj['jobId']);
  // Report only to the organisation that owns the queue, and only for a message that claims to be theirs.
  if (jobId === undefined || obj['orgId'] !== queueOrgId) return { ok: false, reason };
  const attempt = typeof obj['attempt'] === 'number' && Number.isInteger(obj['attempt']) && obj['attempt'] > 0 ? obj['attempt'] : 1;
  return {
    ok: false,
    reason,
    report: { jobId, orgId: queueOrgId, userId: asId(obj['userId']) ?? '', providerId: asId(obj['providerId']) ?? '', attempt },
  };
}

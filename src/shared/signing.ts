import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** Minimum length of SCRIPT_SIGNING_SECRET, identical in both planes. */
export const MIN_SIGNING_SECRET_LENGTH = 32;

/** Lowercase hex SHA-256 of the UTF-8 text. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Lowercase hex HMAC-SHA256 of the UTF-8 text. */
export function hmacHex(text: string, secret: string): string {
  return createHmac('sha256', secret).update(text, 'utf8').digest('hex');
}

export function signScript(script: string, secret: string): { scriptHash: string; signature: string } {
  return { scriptHash: sha256Hex(script), signature: hmacHex(script, secret) };
}

/** Constant-time comparison of two hex strings; false for different lengths or non-hex input. */
export function hexEqual(a: string, b: string): boolean {
  if (!/^[0-9a-f]*$/i.test(a) || !/^[0-9a-f]*$/i.test(b)) return false;
  const ab = Buffer.from(a.toLowerCase(), 'hex');
  const bb = Buffer.from(b.toLowerCase(), 'hex');
  if (ab.length !== bb.length || ab.length === 0) return false;
  return timingSafeEqual(ab, bb);
}

export type ScriptVerdict = 'ok' | 'hash-mismatch' | 'signature-mismatch';

/** Hash first (integrity), then signature (authority) — the order ARCHITECTURE.md fixes. */
export function verifyScript(script: string, scriptHash: string, signature: string, secret: string): ScriptVerdict {
  if (!hexEqual(sha256Hex(script), scriptHash)) return 'hash-mismatch';
  if (!hexEqual(hmacHex(script, secret), signature)) return 'signature-mismatch';
  return 'ok';
}

/**
 * The job envelope (docs/security.md "Job envelope"): the ids a job runs under, the hash of its script, and every
 * other field that changes what the job does or may use. The script's own signature does not cover them, so anyone
 * able to push to Redis could replay a signed script under another organisation's ids, with another provider's
 * session, longer or more often, or with other input; the control plane therefore signs them too.
 */
export interface JobEnvelope {
  readonly jobId: string;
  readonly orgId: string;
  readonly userId: string;
  readonly providerId: string;
  readonly flowId: string;
  readonly flowVersion: string;
  readonly scriptHash: string;
  readonly createdAt: string | number;
  /**
   * The hosts the job's browser may reach. Signed, so that whoever can push to Redis cannot widen or lift a job's
   * egress restriction (ARCHITECTURE.md invariant 5); absent is signed as null (no restriction).
   */
  readonly allowedHosts?: readonly string[] | undefined;
  /** Names the session the worker loads (`sri:sessions:{org}:{user}:{providerName}`). Signed since v3. */
  readonly providerName: string;
  /** How long the job may run. Signed since v3 (absent = null: the worker's EXECUTION_TIMEOUT). */
  readonly timeoutMs?: number | undefined;
  /** How many attempts the job may make. Signed since v3 (absent = null: the queue's default). */
  readonly maxAttempts?: number | undefined;
  /** The script's `payload`. Signed since v3, as canonical JSON (absent = null). */
  readonly metadata?: Readonly<Record<string, unknown>> | undefined;
}

/**
 * Domain tag: an envelope signature can never be mistaken for (or made from) a script signature. v3 added
 * providerName, timeoutMs, maxAttempts and metadata; workers accept v3 only (docs/security.md "Job envelope").
 */
export const ENVELOPE_TAG = 'sri-job-envelope-v3';

/**
 * RFC 8785 (JCS) canonical JSON of a JSON value: object keys sorted by UTF-16 code units (JavaScript's default
 * sort), no whitespace, strings and numbers as JSON.stringify writes them. The same metadata gives the same text
 * whatever order its keys travelled in (PostgreSQL's jsonb reorders them, other producers may too).
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o).sort().filter((k) => o[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * The signed text: the tag, a newline, then the fields as one JSON array in a fixed order (scriptHash lowercase;
 * allowedHosts, timeoutMs and maxAttempts as given or null; metadata as a string holding its canonical JSON, or
 * null).
 */
export function envelopeText(e: JobEnvelope): string {
  return `${ENVELOPE_TAG}\n${JSON.stringify([e.jobId, e.orgId, e.userId, e.providerId, e.flowId, e.flowVersion, e.scriptHash.toLowerCase(), e.createdAt,
    e.allowedHosts ?? null, e.providerName, e.timeoutMs ?? null, e.maxAttempts ?? null, e.metadata === undefined ? null : canonicalJson(e.metadata)])}`;
}

/** Lowercase hex HMAC-SHA256 of envelopeText, key SCRIPT_SIGNING_SECRET. */
export function signEnvelope(e: JobEnvelope, secret: string): string {
  return hmacHex(envelopeText(e), secret);
}

/** Constant-time check of an envelope signature. */
export function verifyEnvelope(e: JobEnvelope, signature: string, secret: string): boolean {
  return hexEqual(signEnvelope(e, secret), signature);
}

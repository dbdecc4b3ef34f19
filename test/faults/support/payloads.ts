/**
 * Random and mutated queue payloads for the fuzz test, from a seeded generator (the seed is printed, so a failure
 * can be replayed with FUZZ_SEED). Each payload says what must become of it, decided by the same rules the
 * contract states — not by running the worker's code:
 * - 'dlq': not JSON, over the size limit, not a job message of the queue's organisation → a dead letter with a
 *   reason;
 * - 'failed': a well-formed job message whose script does not verify (hash or signature) → terminal status
 *   without a retry (a dead letter is accepted too);
 * - 'terminal': a well-formed, signed job message with pathological extras (prototype keys, deep metadata) → any
 *   terminal status, and the worker keeps running.
 */
import { randomUUID } from 'node:crypto';
import { JobMessage } from '../../../src/shared/schemas.ts';
import { signScript, verifyScript } from '../../../src/shared/signing.ts';
import { mulberry32 } from '../../../src/shared/prng.ts';

export type Expectation = 'dlq' | 'failed' | 'terminal';

export interface Payload {
  readonly kind: string;
  readonly raw: string | Buffer;
  readonly expect: Expectation;
  /** The job id a well-formed payload carries. */
  readonly jobId?: string;
}

/** The text a worker reads back for `raw` pushed with ioredis (strings are sent as UTF-8). */
export function storedText(raw: string | Buffer): string {
  return (typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw).toString('utf8');
}

/** mulberry32: small, fast, seeded. */
export const rng = mulberry32;

const UNICODE = ['é', 'ß', '中文', '🙂', '👩‍👩‍👧', '\u202e', '\u0000', '\u2028', '\ufeff', 'ﷺ', '\ud800', '\udfff', '𝕏', 'Ω', '\u0301'];
const KIND_WEIGHTS = {
  'random-text': 6, 'random-bytes': 6, 'truncated-json': 6, 'mutated-json': 6, 'wrong-type': 6, 'missing-fields': 6,
  'json-scalar': 4, 'bad-signature': 2, 'bad-hash': 2, 'unicode-fields': 3, 'prototype-keys': 3, 'other-org': 4,
  'depth-bomb': 3, 'deep-metadata': 2, 'bad-ids': 5, 'huge-field-name': 2, 'duplicate-keys': 3,
} as const;
/** Every kind of bad payload the generator makes; the fuzz test pushes each of them at least once. */
export const PAYLOAD_KINDS: readonly PayloadKind[] = [...Object.keys(KIND_WEIGHTS) as Array<keyof typeof KIND_WEIGHTS>, 'huge'];
export type PayloadKind = keyof typeof KIND_WEIGHTS | 'huge';
const WEIGHTED_KINDS = Object.entries(KIND_WEIGHTS).flatMap(([k, w]) => Array<keyof typeof KIND_WEIGHTS>(w).fill(k as keyof typeof KIND_WEIGHTS));
const WRONG_VALUES: unknown[] = [null, 0, -1, 1e308, true, false, [], {}, [1, 2], { a: 1 }, '', ' ', '../..', 'x'.repeat(300), '🙂'];

export interface PayloadContext {
  readonly orgId: string;
  /** An organisation of the same test whose queue the payload is not in (for cross-organisation pushes). */
  readonly otherOrgId: string;
  readonly secret: string;
  readonly script: string;
  readonly maxJobBytes: number;
}

export class PayloadGenerator {
  private readonly r: () => number;
  constructor(readonly seed: number) {
    this.r = rng(seed);
  }

  int(n: number): number {
    return Math.floor(this.r() * n);
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  randomString(len: number): string {
    let s = '';
    for (let i = 0; i < len; i++) {
      const k = this.int(10);
      s += k < 6 ? String.fromCharCode(32 + this.int(95)) : k < 8 ? this.pick(UNICODE) : String.fromCharCode(this.int(0xffff));
    }
    return s;
  }

  /** A correctly signed job message of `ctx.orgId` (fresh id). */
  validJob(ctx: PayloadContext, overrides: Record<string, unknown> = {}): Record<string, unknown> {
    const { scriptHash, signature } = signScript(ctx.script, ctx.secret);
    return {
      jobId: `fz-${randomUUID()}`, orgId: ctx.orgId, userId: 'user-1', providerId: 'demo', providerName: 'demo',
      flowId: 'flow-1', flowVersion: '1.0.0', scriptContent: ctx.script, scriptHash, signature,
      // The worker's four slots may all serve one organisation's account at once (the fuzz is about payloads, not
      // about one run at a time per portal account, which would otherwise allow one per organisation).
      createdAt: new Date().toISOString(), maxConcurrentPerAccount: 4, ...overrides,
    };
  }

  /** One bad payload of `kind`, or of a random kind. */
  next(ctx: PayloadContext, kind: PayloadKind = this.randomKind()): Payload {
    const job = this.validJob(ctx);
    // Most well-formed oddities also carry a bad signature; the rest must run like any signed job.
    const mostlyUnsigned = () => { if (this.int(10) > 0) job['signature'] = this.randomHex(); };
    const json = () => JSON.stringify(job);
    switch (kind) {
      case 'random-text':
        return this.classify(ctx, kind, this.randomString(1 + this.int(200)));
      case 'random-bytes': {
        const b = Buffer.alloc(1 + this.int(300));
        for (let i = 0; i < b.length; i++) b[i] = this.int(256);
        return this.classify(ctx, kind, b);
      }
      case 'truncated-json': {
        const s = json();
        return this.classify(ctx, kind, s.slice(0, this.int(s.length - 1)));
      }
      case 'mutated-json': {
        const chars = [...json()];
        for (let n = 1 + this.int(4); n > 0; n--) {
          const i = this.int(chars.length);
          const op = this.int(3);
          if (op === 0) chars[i] = this.pick(['"', '{', '}', '[', ']', ',', ':', '\\', 'x', '0', ' ']);
          else if (op === 1) chars.splice(i, 1);
          else chars.splice(i, 0, this.pick(['"', '{', ',', '\\u', 'null', '1e999']));
        }
        return this.classify(ctx, kind, chars.join(''));
      }
      case 'wrong-type': {
        const field = this.pick(Object.keys(job));
        job[field] = this.pick(WRONG_VALUES);
        if (this.int(2)) job['attempt'] = this.pick(['1', -5, 0, 1.5, 1e9]);
        return this.classify(ctx, kind, json());
      }
      case 'missing-fields': {
        for (let n = 1 + this.int(3); n > 0; n--) delete job[this.pick(Object.keys(job))];
        return this.classify(ctx, kind, json());
      }
      case 'json-scalar':
        return this.classify(ctx, kind, this.pick(['null', 'true', '0', '-1', '""', '[]', '{}', '"job"', '1e999', '[{}]', '[null]']));
      case 'bad-signature':
        job['signature'] = this.randomHex();
        return this.classify(ctx, kind, json());
      case 'bad-hash':
        job['scriptHash'] = this.randomHex();
        return this.classify(ctx, kind, json());
      case 'unicode-fields': {
        for (const f of ['flowVersion', 'traceId', 'userId', 'providerName', 'createdAt']) {
          if (this.int(2)) job[f] = this.randomString(1 + this.int(30));
        }
        job['metadata'] = { [this.randomString(5)]: this.randomString(50) };
        mostlyUnsigned();
        return this.classify(ctx, kind, json());
      }
      case 'prototype-keys': {
        // JSON.parse makes these own properties; nothing may reach Object.prototype or change the job.
        const extra = this.pick([
          '"__proto__":{"polluted":true,"jobId":"evil"}', '"constructor":{"prototype":{"polluted":true}}',
          '"__proto__":null', '"metadata":{"__proto__":{"polluted":true}}', '"toString":"x","hasOwnProperty":1',
        ]);
        mostlyUnsigned();
        const s = json();
        const raw = `{${extra},${s.slice(1)}`;
        return this.classify(ctx, kind, raw);
      }
      case 'other-org':
        job['orgId'] = ctx.otherOrgId;
        return this.classify(ctx, kind, json());
      case 'depth-bomb': {
        const depth = 1000 + this.int(60_000);
        const open = this.pick(['[', '{"a":']);
        const raw = open === '[' ? '['.repeat(depth) + ']'.repeat(depth) : `${open.repeat(depth)}1${'}'.repeat(depth)}`;
        return this.classify(ctx, kind, raw);
      }
      case 'deep-metadata': {
        const depth = 500 + this.int(20_000);
        mostlyUnsigned();
        const s = json();
        const raw = `${s.slice(0, -1)},"metadata":{"d":${'{"d":'.repeat(depth)}0${'}'.repeat(depth)}}}`;
        return this.classify(ctx, kind, raw);
      }
      case 'bad-ids':
        job[this.pick(['jobId', 'orgId', 'userId', 'flowId'])] = this.pick(['', '.', '..', '../../etc', 'a b', 'a:b', 'x'.repeat(129), 'job\u0000', 'sri:org:x']);
        return this.classify(ctx, kind, json());
      case 'huge-field-name':
        mostlyUnsigned();
        return this.classify(ctx, kind, `{"${'k'.repeat(70_000)}":1,${json().slice(1)}`);
      case 'duplicate-keys':
        // Parsers disagree on which duplicate wins; both copies here are invalid ids, so no reading is a job.
        return this.classify(ctx, kind, `{"jobId":"a b",${json().slice(1, -1)},"jobId":"../x"}`);
      case 'huge': {
        const big = 'x'.repeat(ctx.maxJobBytes + 1 + this.int(200_000));
        return this.classify(ctx, kind, this.int(2) ? big : JSON.stringify(this.validJob(ctx, { metadata: { big } })));
      }
    }
  }

  /**
   * Weighted: kinds that reach script verification (and upload an execution.log) or the browser cost more per
   * payload than those stopped at parsing; oversized ones are costly to push. A few percent of each is plenty.
   */
  private randomKind(): PayloadKind {
    return this.int(1000) < 3 ? 'huge' : this.pick(WEIGHTED_KINDS);
  }

  private randomHex(): string {
    let s = '';
    for (let i = 0; i < 64; i++) s += '0123456789abcdef'[this.int(16)];
    return s;
  }

  /** What the contract says must happen to `raw` pushed to the queue of `ctx.orgId`. */
  private classify(ctx: PayloadContext, kind: string, raw: string | Buffer): Payload {
    const bytes = typeof raw === 'string' ? Buffer.byteLength(raw, 'utf8') : raw.length;
    if (bytes > ctx.maxJobBytes) return { kind, raw, expect: 'dlq' };
    // What Redis stores and a worker reads back: the UTF-8 bytes (a lone surrogate becomes U+FFFD on the way).
    const text = storedText(raw);
    if (typeof raw !== 'string' && !Buffer.from(text, 'utf8').equals(raw)) return { kind, raw, expect: 'dlq' };
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      return { kind, raw, expect: 'dlq' };
    }
    const parsed = JobMessage.safeParse(data);
    if (!parsed.success || parsed.data.orgId !== ctx.orgId) return { kind, raw, expect: 'dlq' };
    const job = parsed.data;
    const verdict = verifyScript(job.scriptContent ?? '', job.scriptHash, job.signature, ctx.secret);
    return { kind, raw, jobId: job.jobId, expect: verdict === 'ok' ? 'terminal' : 'failed' };
  }
}

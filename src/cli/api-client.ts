/**
 * The CLI's JSON client for the API (also used by `sri demo` and the tests). API errors become SriErrors with the
 * API's code, so the CLI prints `error CODE: message`.
 *
 * It tries again what another try can fix — a 429 or a retryable error code (503 SERVICE_UNAVAILABLE: a backing
 * service was slow or down), honouring Retry-After — with full-jitter backoff until `retryDeadlineMs`. A request
 * that got no answer at all (connection refused or reset) is sent again only when that cannot do it twice: a GET,
 * HEAD, PUT or DELETE, or a POST carrying an Idempotency-Key. POST /api/run gets a key of its own when the caller
 * gave none, so a run whose answer was lost is not queued twice.
 */
import { randomUUID } from 'node:crypto';
import { ERRORS, SriError, type ErrorCode } from '../shared/errors.ts';

export interface ApiClientOptions {
  /** Stop trying again after this long (the last error is thrown). 0 turns retries off. @default 60000 */
  readonly retryDeadlineMs?: number;
  /** Called before each wait, for a progress line. */
  readonly onRetry?: (what: string, attempt: number, delayMs: number) => void;
}

const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);
const BASE_DELAY_MS = 250;
const MAX_DELAY_MS = 5000;

function retryableAnswer(status: number, code: string | undefined): boolean {
  if (status === 429 || status === 502 || status === 504) return true;
  return code !== undefined && code in ERRORS && ERRORS[code as ErrorCode].retryable && status >= 500;
}

/** Retry-After in seconds (the only form the API sends), capped so one answer cannot park the client. */
function retryAfterMs(res: Response): number | undefined {
  const v = Number(res.headers.get('retry-after'));
  return Number.isFinite(v) && v > 0 ? Math.min(v * 1000, 30_000) : undefined;
}

export class ApiClient {
  token: string | undefined;
  constructor(readonly baseUrl: string, private readonly opts: ApiClientOptions = {}) {}

  async request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: T }> {
    const deadline = Date.now() + (this.opts.retryDeadlineMs ?? 60_000);
    const sent: Record<string, string> = { ...headers };
    const ownKey = method === 'POST' && path.split('?')[0] === '/api/run' && !Object.keys(sent).some((h) => h.toLowerCase() === 'idempotency-key');
    if (ownKey) sent['idempotency-key'] = randomUUID();
    const mayResend = IDEMPOTENT_METHODS.has(method) || Object.keys(sent).some((h) => h.toLowerCase() === 'idempotency-key');
    for (let attempt = 1; ; attempt++) {
      const backoff = Math.round(Math.random() * Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (attempt - 1)));
      const wait = async (ms: number, what: string): Promise<boolean> => {
        if (Date.now() + ms >= deadline) return false;
        this.opts.onRetry?.(what, attempt, ms);
        await new Promise((r) => setTimeout(r, ms));
        return true;
      };
      let res: Response;
      try {
        res = await fetch(new URL(path, this.baseUrl), {
          method,
          headers: {
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
            ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
            ...sent,
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (e) {
        if (mayResend && await wait(backoff, `${method} ${path}: no answer`)) continue;
        throw new SriError('SERVICE_UNAVAILABLE', `cannot reach the API at ${this.baseUrl} (${String((e as Error).cause ?? (e as Error).message)}); start it with npm start`);
      }
      const text = await res.text();
      let parsed: unknown;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        parsed = text;
      }
      if (res.ok) return { status: res.status, body: parsed as T };
      const err = (parsed as { error?: { code?: string; message?: string; details?: unknown } } | undefined)?.error;
      if (retryableAnswer(res.status, err?.code) && await wait(retryAfterMs(res) ?? backoff, `${method} ${path} → ${res.status} ${err?.code ?? ''}`.trim())) {
        // A 503 from POST /api/run means nothing was queued (the job is recorded as failed): a new key runs it anew
        // instead of replaying the failed one.
        if (ownKey && res.status === 503) sent['idempotency-key'] = randomUUID();
        continue;
      }
      const code = err?.code && err.code in ERRORS ? (err.code as ErrorCode) : 'INTERNAL';
      throw new SriError(code, `${method} ${path} → ${res.status}: ${err?.message ?? text.slice(0, 300)}`, { details: err?.details });
    }
  }
}

/**
 * Retrying what is safe to retry, with full-jitter exponential backoff inside a deadline. A busy machine makes a
 * backing service slow, not gone: a Redis command that timed out while the host's cores were saturated usually
 * succeeds on the next try, so an idempotent operation is tried again until its deadline rather than turned into a
 * 503 at the first timeout. Only idempotent operations may use this (the queue's enqueue is: it refuses a job id
 * that already has a status).
 */

export interface RetryOptions {
  /** Give up (rethrow the last error) once this much time has passed since the first try. @default 30000 */
  readonly deadlineMs?: number;
  /** Backoff base: try n waits a random time in [0, min(maxDelayMs, baseDelayMs × 2^(n-1))]. @default 100 */
  readonly baseDelayMs?: number;
  /** @default 2000 */
  readonly maxDelayMs?: number;
  /** Which errors are worth another try; others are rethrown at once. */
  readonly isRetryable: (err: unknown) => boolean;
  /** Called before each wait (for a log line). */
  readonly onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  readonly signal?: AbortSignal;
}

export async function retryTransient<T>(fn: () => Promise<T>, opts: RetryOptions): Promise<T> {
  const deadline = Date.now() + (opts.deadlineMs ?? 30_000);
  const base = opts.baseDelayMs ?? 100;
  const cap = opts.maxDelayMs ?? 2000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!opts.isRetryable(err) || opts.signal?.aborted) throw err;
      const delayMs = Math.round(Math.random() * Math.min(cap, base * 2 ** (attempt - 1)));
      if (Date.now() + delayMs >= deadline) throw err;
      opts.onRetry?.(err, attempt, delayMs);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

/** Network errors of Node's sockets and of the drivers (pg, ioredis, AWS SDK) that say "not reached", not "refused". */
const TRANSIENT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * Whether a Redis client error says the server was not reached or was slow (a timeout, a closed or reconnecting
 * connection, ioredis giving up on a request), rather than that the command itself failed (a script error, a
 * wrong type, an ACL refusal), which another try would only repeat.
 */
export function isTransientRedisError(err: unknown): boolean {
  const e = err as { code?: string; name?: string; message?: string } | undefined;
  if (!e || typeof e !== 'object') return false;
  if (e.code && TRANSIENT_CODES.has(e.code)) return true;
  if (e.name === 'MaxRetriesPerRequestError') return true;
  return /^(Connection is closed|Command timed out|Stream isn't writeable|LOADING|BUSY |TRYAGAIN|CLUSTERDOWN)/.test(e.message ?? '');
}

import { isSriError, SriError } from '../../shared/errors.ts';

/**
 * Settles with `work`, unless `timeoutMs` passes (EXECUTION_TIMEOUT) or `signal` aborts (WORKER_SHUTDOWN) first;
 * then `stop` runs — for a job, closing its browser context, which makes every pending page call of the script
 * fail so the script cannot go on working after its job ended.
 */
export function withDeadline<T>(work: Promise<T>, timeoutMs: number, signal: AbortSignal, stop: () => Promise<unknown>): Promise<T> {
  // The work may reject after we gave up on it (its context was closed): that is expected, not unhandled.
  work.catch(() => {});
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      fn();
    };
    const giveUp = (err: SriError) => finish(() => {
      reject(err);
      stop().catch(() => {});
    });
    const timer = setTimeout(() => giveUp(new SriError('EXECUTION_TIMEOUT', `Execution timed out after ${timeoutMs} ms`)), timeoutMs);
    // The abort reason says why (CANCELLED, WORKER_SHUTDOWN); a bare abort() means shutdown.
    const onAbort = () => giveUp(isSriError(signal.reason) ? signal.reason
      : new SriError('WORKER_SHUTDOWN', 'The worker stopped before the job could finish; run it again.'));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    work.then((v) => finish(() => resolve(v)), (e: unknown) => finish(() => reject(e)));
  });
}

/** Bounds an operation that cannot be cancelled (an S3 upload): it keeps running, but we stop waiting. */
export function boundWait<T>(work: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  work.catch(() => {});
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} took longer than ${timeoutMs} ms`)), timeoutMs);
    work.then((v) => { clearTimeout(timer); resolve(v); }, (e: unknown) => { clearTimeout(timer); reject(e); });
  });
}

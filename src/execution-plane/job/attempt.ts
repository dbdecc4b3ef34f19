/**
 * One attempt at one job, from the moment its message was found valid to its outcome — the object every stage of
 * the pipeline (stages/*.ts) receives, as Playwright's server `Progress` carries one operation's deadline, abort and
 * log. It holds, made once:
 * - the job, its lease (`taken`) and how many attempts it may have;
 * - its deadline: `timeoutMs` (the job's own, else EXECUTION_TIMEOUT) and the run clock it starts (deadline.ts
 *   JobClock, paused during a hand-off); `ioSignal` bounds the attempt's S3 calls;
 * - its abort signal (cancel, lease lost, worker shutdown: the reason says which);
 * - its logs (the worker's logger with the job's fields, execution.log, the live log), its redactor and the secret
 *   values parsed data must not show, its trace;
 * - what it produced (`artifacts`) and what it must undo (`defer`: clean-ups, run once when the attempt ends).
 * Per-attempt things a stage adds (a recording, a classifier) hang here, not on new parameters.
 */
import type { Browser } from 'playwright-core';
import type { Logger } from '../../shared/logger.ts';
import type { JobMessage } from '../../shared/schemas.ts';
import type { Taken } from '../../shared/queue/job-queue.ts';
import { isSriError } from '../../shared/errors.ts';
import type { LogStreamEnd } from '../../shared/job-logs.ts';
import type { WorkerConfig } from '../config.ts';
import { createJobLogBatcher } from '../logs/redis-sink.ts';
import { JobClock } from './deadline.ts';
import { ExecutionLog } from './execution-log.ts';
import { JobArtifacts } from './helpers.ts';
import type { JobTrace } from './job-trace.ts';
import { Redactor, SecretValues } from './redactor.ts';
import type { PipelineDeps } from './pipeline.ts';
import { effectiveFeatures, EMPTY_LIVE_CONFIG, type WorkerFeatures } from '../../shared/live-config.ts';

/** The abort reason the worker uses when a job's lease was lost: the job is someone else's now. */
export const LEASE_LOST = 'lease-lost';

/** How long one S3 call of an attempt (an evidence upload, a script or evidence read) may take. */
export const S3_CALL_TIMEOUT_MS = 60_000;

/** Where the attempt failed, which decides how an error without a code is classified (stages/report.ts). */
export type AttemptPhase = 'prepare' | 'browser' | 'script';

/** The job's run time: its own `timeoutMs`, else EXECUTION_TIMEOUT. The one place it is computed. */
export function jobTimeoutMs(job: Pick<JobMessage, 'timeoutMs'>, config: Pick<WorkerConfig, 'executionTimeoutMs'>): number {
  return job.timeoutMs ?? config.executionTimeoutMs;
}

export class JobAttempt {
  readonly attempt: number;
  /** The job's run time limit (ms): the script's, a login flow's, and the run clock's. */
  readonly timeoutMs: number;
  readonly log: Logger;
  /** Removes the worker's and the job's secrets from every text that leaves the job (logs, errors, HTML). */
  readonly redactor: Redactor;
  /** Parsed data is the portal's data: only values that *are* a secret are replaced there (redactor.ts). */
  readonly secretValues: SecretValues;
  /** execution.log; every line (redacted) is also batched into the job's live Redis stream, never blocking. */
  readonly exec: ExecutionLog;
  readonly artifacts = new JobArtifacts();
  /** The live feature flags of the job's provider, read once at the attempt's start (../live-config.ts). */
  readonly features: WorkerFeatures;
  phase: AttemptPhase = 'prepare';
  /** The browser the job's context belongs to, once reserved: a dead one makes the failure BROWSER_CRASHED. */
  browser: Browser | undefined;
  /** The job's page crashed (its renderer died). */
  crashed = false;
  private clock: JobClock | undefined;
  private readonly liveLog;
  private readonly cleanups: (() => unknown)[] = [];

  constructor(
    readonly job: JobMessage,
    readonly taken: Taken,
    readonly maxAttempts: number,
    readonly deps: PipelineDeps,
    /** Aborted on cancel, on a lost lease and on the worker's shutdown; `reason` is the SriError that says which. */
    readonly signal: AbortSignal,
    readonly trace: JobTrace,
    /** When the worker took the job (epoch ms). */
    readonly started: number,
  ) {
    const { config } = deps;
    this.attempt = taken.attempt;
    this.timeoutMs = jobTimeoutMs(job, config);
    this.features = deps.features?.(job) ?? effectiveFeatures(EMPTY_LIVE_CONFIG, job.providerName);
    this.log = deps.logger.child({ jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId, ...trace.logFields() });
    this.redactor = new Redactor([config.scriptSigningSecret, config.s3SecretKey]);
    this.secretValues = new SecretValues([config.scriptSigningSecret, config.s3SecretKey]);
    this.liveLog = createJobLogBatcher(deps.redis, config, job.jobId, {
      onError: (e) => this.log.warn({ err: this.redactor.redact(messageOf(e)) }, 'a live-log batch could not be written (counted as dropped)'),
    });
    this.exec = new ExecutionLog(this.redactor, (line) => this.liveLog.append(line));
  }

  get config(): WorkerConfig {
    return this.deps.config;
  }

  /**
   * The run clock, started at the first call (when the browser stage runs the job's code): the deadline is
   * `timeoutMs` after that, moved by the time a hand-off waited for a person.
   */
  runClock(): JobClock {
    this.clock ??= new JobClock(this.timeoutMs);
    return this.clock;
  }

  /**
   * A signal for one S3 call of the attempt: aborted after S3_CALL_TIMEOUT_MS, or when the worker shuts down or the
   * lease is lost (the job goes back untouched, or is someone else's). A cancel does not abort it: a cancelled job
   * still keeps its evidence.
   */
  ioSignal(ms = S3_CALL_TIMEOUT_MS): AbortSignal {
    return AbortSignal.any([AbortSignal.timeout(ms), this.stopSignal()]);
  }

  private shutdown: AbortController | undefined;

  /** Aborted when `signal` aborts for a worker shutdown or a lost lease (not for a cancel). */
  stopSignal(): AbortSignal {
    if (!this.shutdown) {
      const c = new AbortController();
      const check = () => {
        const r: unknown = this.signal.reason;
        if (isSriError(r) ? r.code === 'WORKER_SHUTDOWN' : this.signal.aborted) c.abort(r);
      };
      if (this.signal.aborted) check();
      else this.signal.addEventListener('abort', check, { once: true });
      this.shutdown = c;
    }
    return this.shutdown.signal;
  }

  /** Why the attempt was aborted: 'cancelled', 'shutdown' (grace period over), 'lease-lost', or undefined. */
  abortKind(): 'cancelled' | 'shutdown' | 'lease-lost' | undefined {
    if (!this.signal.aborted) return undefined;
    const r: unknown = this.signal.reason;
    if (isSriError(r) && r.code === 'CANCELLED') return 'cancelled';
    if (isSriError(r) && r.code === 'WORKER_SHUTDOWN') return r.details === LEASE_LOST ? 'lease-lost' : 'shutdown';
    return undefined;
  }

  /** Runs `fn` once when the attempt ends (after its outcome, whatever it was), the latest added first. */
  defer(fn: () => unknown): void {
    this.cleanups.push(fn);
  }

  /** Runs the clean-ups; one that fails is logged, the others still run. */
  async dispose(): Promise<void> {
    for (const fn of this.cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch (e) {
        this.log.warn({ err: this.redactor.redact(messageOf(e)) }, 'a clean-up of the job attempt failed');
      }
    }
  }

  /** Closes the live log (the worker's metrics hear its totals); its drops are said in execution.log. */
  async closeLiveLog(): Promise<LogStreamEnd> {
    const s = await this.liveLog.close();
    this.deps.onLiveLogClosed?.(s);
    // After close: in execution.log (and the result), no longer streamed.
    if (s.droppedLines) this.exec.warn(`live log: ${s.droppedLines} line(s) in ${s.droppedBatches} batch(es) were not streamed (Redis fell behind); this execution.log is complete`);
    return s;
  }

  elapsedMs(): number {
    return Date.now() - this.started;
  }
}

export function messageOf(e: unknown): string {
  const m = (e as { message?: unknown } | null)?.message;
  return typeof m === 'string' ? m : String(e);
}

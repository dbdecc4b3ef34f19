/**
 * The spans of one job attempt on a worker (docs/observability.md "Traces"), under the context the job message's
 * `traceparent` names (the control plane's `enqueue` span; none: a trace of its own):
 *
 *   enqueue (control plane)
 *   ├── job.take    from the lease (the queue's clock) to the pipeline's start
 *   └── job         the attempt, to its outcome (`sri.job.status`)
 *       ├── verify  envelope signature and replay check, script hash and signature
 *       ├── session the portal session and the job's secrets
 *       ├── run     the browser context and the script
 *       ├── upload  the live log's close and the evidence to S3
 *       └── publish the queue transition with the result; the result message carries this span's traceparent,
 *                   so the control plane's `result.record` is its child
 *
 * Phases are entered in the pipeline's order and entering one ends the one before, so the pipeline marks its phases
 * with one call each instead of wrapping them. A failure marks the current phase and the job span ERROR with the
 * job's `error.code`.
 */
import type { Taken } from '../../shared/queue/job-queue.ts';
import type { JobMessage } from '../../shared/schemas.ts';
import {
  contextFromTraceparent, setSpanError, SpanKind, SpanStatusCode, startChildSpan, traceFields, traceparentOf, type Span, type Tracer,
} from '../../shared/tracing.ts';

export type JobPhase = 'verify' | 'session' | 'run' | 'upload' | 'publish';

export class JobTrace {
  private job: Span | undefined;
  private phase: Span | undefined;
  private phaseName: JobPhase | undefined;
  private failed = false;
  private startedAt = Date.now();

  constructor(
    private readonly tracer: Tracer,
    private readonly taken: Taken,
    private readonly opts: { workerId: string; leaseMs: number },
  ) {}

  /**
   * Starts `job.take` (ended at once) and `job` under the message's traceparent; `message` is undefined for a
   * message that could not be read (its spans start a trace of their own).
   */
  begin(message: JobMessage | undefined): void {
    if (this.job) return;
    const now = Date.now();
    const parent = contextFromTraceparent(message?.traceparent);
    const attributes = {
      'sri.org.id': this.taken.orgId, 'sri.worker.id': this.opts.workerId, 'sri.job.attempt': this.taken.attempt,
      ...(message ? { 'sri.job.id': message.jobId, 'sri.provider.id': message.providerId, 'sri.flow.id': message.flowId, 'sri.flow.version': message.flowVersion } : {}),
    };
    // The lease's deadline is the queue's (Redis) clock + leaseMs; a clock ahead of ours must not start it in the future.
    const takenAt = Math.min(now, this.taken.leaseDeadline - this.opts.leaseMs);
    this.startedAt = takenAt;
    const take = startChildSpan(this.tracer, 'job.take', parent, {
      kind: SpanKind.CONSUMER, startTime: takenAt,
      attributes: { ...attributes, 'messaging.system': 'redis', 'messaging.operation.type': 'receive', 'sri.lease.recovered': this.taken.recovered === true },
    });
    take.end(now);
    this.job = startChildSpan(this.tracer, 'job', parent, { startTime: takenAt, attributes });
  }

  /** Ends the current phase (if any) and starts `phase` as a child of `job`; in `phase` already: nothing. */
  enter(phase: JobPhase): void {
    this.begin(undefined);
    if (this.phaseName === phase) return;
    this.phase?.end();
    this.phaseName = phase;
    this.phase = startChildSpan(this.tracer, phase, this.job!, phase === 'publish' ? { kind: SpanKind.PRODUCER } : {});
  }

  /** The current phase failed with `code`; so did the job, with the first such code (the job's error). */
  fail(code: string, message?: string): void {
    this.begin(undefined);
    if (this.phase) setSpanError(this.phase, code, message);
    if (!this.failed) setSpanError(this.job!, code, message);
    this.failed = true;
  }

  /** `traceId` and `spanId` (of `job`) for every log line of the job. */
  logFields(): { traceId?: string; spanId?: string } {
    this.begin(undefined);
    return traceFields(this.job!);
  }

  /** `{ traceparent }` of the current phase (`publish` when the result is made) for the result message. */
  resultFields(): { traceparent?: string } {
    this.begin(undefined);
    const tp = traceparentOf(this.phase ?? this.job!);
    return tp === undefined ? {} : { traceparent: tp };
  }

  /** Ends every open span with the attempt's outcome. */
  end(outcome: { status: string; durationMs: number; errorCode?: string }): void {
    this.begin(undefined);
    const job = this.job!;
    job.setAttributes({ 'sri.job.status': outcome.status, 'sri.job.duration_ms': outcome.durationMs });
    // The outcome's code is the job's, whatever a phase saw first (a cancel makes the script fail, for one).
    if (outcome.errorCode !== undefined) {
      if (this.failed) job.setAttributes({ 'error.code': outcome.errorCode, 'error.type': outcome.errorCode });
      else setSpanError(job, outcome.errorCode);
      this.failed = true;
    }
    if (!this.failed) job.setStatus({ code: SpanStatusCode.OK });
    this.phase?.end();
    this.phase = undefined;
    this.phaseName = undefined;
    job.end();
  }

  /** Ends every open span failed: Redis or S3 failed while the outcome was reported (the lease will expire). */
  abort(err: unknown): void {
    this.fail('UNREPORTED', (err as Error | undefined)?.message ?? String(err));
    this.end({ status: 'unreported', durationMs: Date.now() - this.startedAt, errorCode: 'UNREPORTED' });
  }
}

/**
 * What a task is given: its steps run through the write-execute executor, each one logged live and kept as an audit
 * record; the compose settings; the task's deadline. Tasks never spawn anything themselves.
 */
import type { OpsStepRecord } from '../../shared/ops/schemas.ts';
import type { OpsWorkerConfig } from '../config.ts';
import type { StepExecutor, StepOutcome } from '../executor.ts';

export interface StepSpec {
  name: string;
  /** The audit's "what ran": the commands, without secrets. */
  command: string;
  body: string;
  secrets?: Record<string, string>;
  /** Variables on top of the compose ones. */
  env?: Record<string, string>;
  /** @default what is left of the task's time */
  timeoutMs?: number;
  /**
   * A rollback step: it runs even after the task's deadline cut the step that failed (the services must not stay
   * half-updated), bounded by its own `timeoutMs` and stopped only when the worker stops.
   */
  rollback?: boolean;
}

/** Longest a rollback step without its own timeout may run (ms). */
export const ROLLBACK_STEP_TIMEOUT_MS = 10 * 60_000;

export type LogFn = (message: string, level?: 'info' | 'warn' | 'error') => void;

export class TaskContext {
  readonly steps: OpsStepRecord[] = [];

  constructor(
    readonly config: OpsWorkerConfig,
    private readonly executor: StepExecutor,
    /** The variables every step gets: compose file, project, command, engine access. */
    private readonly baseEnv: Record<string, string>,
    readonly log: LogFn,
    private readonly onLine: (line: string, stream: 'stdout' | 'stderr') => void,
    readonly signal: AbortSignal,
    private readonly deadline: number,
    /** Aborted when the worker stops (a rollback step's only stop). */
    private readonly stopSignal: AbortSignal = signal,
  ) {}

  remainingMs(): number {
    return Math.max(1, this.deadline - Date.now());
  }

  async step(spec: StepSpec): Promise<StepOutcome> {
    this.log(`── step ${spec.name}: ${spec.command}`);
    const timeoutMs = spec.rollback ? (spec.timeoutMs ?? ROLLBACK_STEP_TIMEOUT_MS) : Math.min(spec.timeoutMs ?? Infinity, this.remainingMs());
    const outcome = await this.executor.run({
      name: spec.name, body: spec.body, timeoutMs,
      env: { ...this.baseEnv, ...spec.env }, signal: spec.rollback ? this.stopSignal : this.signal, onLine: this.onLine,
      ...(spec.secrets ? { secrets: spec.secrets } : {}),
    });
    this.record(spec.name, spec.command, outcome);
    this.log(`── step ${spec.name} ${outcome.ok ? 'ok' : 'failed'} (exit ${outcome.exitCode ?? outcome.killedBy}, ${outcome.durationMs} ms)`, outcome.ok ? 'info' : 'error');
    return outcome;
  }

  /** A step done in the worker itself (an HTTP readiness check), kept in the audit like the others. */
  record(name: string, command: string, o: Pick<StepOutcome, 'startedAt' | 'durationMs' | 'exitCode' | 'ok' | 'timedOut' | 'aborted' | 'outputTail'>): void {
    this.steps.push({
      name, command, startedAt: o.startedAt, durationMs: o.durationMs, exitCode: o.exitCode,
      outcome: o.ok ? 'ok' : o.timedOut ? 'timeout' : o.aborted ? 'aborted' : 'failed', outputTail: o.outputTail,
    });
  }
}

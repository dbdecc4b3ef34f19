/**
 * What a script runner gets and must provide: the pipeline hands it the job's real objects; the sandbox runner
 * (sandbox/sandbox-runner.ts) runs the script in a process of its own and lets it reach them only through messages.
 */
import type { Page } from 'playwright-core';
import type { JobClock } from '../job/deadline.ts';
import type { ScriptHelpers } from '../job/helpers.ts';
import type { VerifiedScript } from './verified-script.ts';

/** `context` argument of a script (ARCHITECTURE.md "Script shape"). */
export interface ScriptContext {
  readonly jobId: string;
  readonly orgId: string;
  readonly userId: string;
  readonly providerId: string;
  readonly flowId: string;
  readonly flowVersion: string;
  readonly attempt: number;
}

/** Exactly what the script's default export is called with — nothing more reaches it. */
export interface ScriptArgs {
  readonly page: Page;
  readonly payload: Record<string, unknown>;
  readonly helpers: ScriptHelpers;
  readonly context: ScriptContext;
}

export interface ScriptRunOptions {
  /** Bound on the script's synchronous parts; the pipeline bounds the whole run (and closes the context). */
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
  /** The job's run time, which a hand-off pauses; without it `timeoutMs` from the start bounds the run. */
  readonly clock?: JobClock;
  /** Names the compiled code in stack traces. */
  readonly filename: string;
}

export interface ScriptRunner {
  readonly name: string;
  /**
   * Compiles the verified script and awaits its default export called with `args`. Throws SriError
   * SCRIPT_INVALID (bad shape), EXECUTION_TIMEOUT (synchronous part too long) or the script's own error as is.
   */
  run(script: VerifiedScript, args: ScriptArgs, opts: ScriptRunOptions): Promise<void>;
  /**
   * Keeps up to `count` sandboxes started ahead and waiting, each for one script: a job then does not wait for a
   * process to start (issue 14). Each still runs exactly one script and is killed after it.
   */
  prepare?(count: number): void;
  /** Stops the sandboxes started ahead. */
  close?(): void;
}

/**
 * The write-execute executor of the operations worker: every step of every ops task runs through here, and only
 * through here (docs/operations.md "How a step runs").
 *
 * What must hold for each step:
 *   - A private temporary directory (mode 0700) under the work directory holds one script file (mode 0700) whose
 *     text starts with exactly SAFETY_HEADER (`#!/bin/bash` + `set -euo pipefail`), then the step's body.
 *   - The file is executed directly with an environment built from an allowlist (PATH, HOME and the names the
 *     caller gives), never the worker's own environment: the worker's Redis password and the like stay out of it.
 *   - Secrets travel as one JSON object on stdin, which is closed right after: a script reads them once (`cat`) and
 *     a second read gets EOF. No secret is ever in argv, in the environment or in the file.
 *   - stdout and stderr are split into lines and handed to `onLine` as they come (the caller batches them into the
 *     task's live log), with every secret value (and its JSON-escaped form) replaced by `***`.
 *   - The exit code alone decides success. On timeout or abort the whole process group is killed (the script runs
 *     as the leader of its own group, so `docker compose` children die with it) before anything is cleaned up.
 *   - The directory and the file are removed in every outcome.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The first two lines of every script, byte for byte. */
export const SAFETY_HEADER = '#!/bin/bash\nset -euo pipefail\n';

/** Environment variables every step gets (when the worker has them); the caller adds the rest by name and value. */
export const BASE_ENV_ALLOWLIST = ['PATH', 'HOME'] as const;

export type StepStream = 'stdout' | 'stderr';

export interface StepRequest {
  /** Short name of the step, for the log and the audit (`pull`, `up`, `health`…). */
  name: string;
  /** The script's body, after the safety header. */
  body: string;
  /** Values handed on stdin as one JSON object (then stdin is closed); redacted from every output line. */
  secrets?: Readonly<Record<string, string>>;
  /** The step's own variables (compose file, project, versions): added to the allowlisted base environment. */
  env?: Readonly<Record<string, string>>;
  /** Longest the step may run; then its process group is killed. */
  timeoutMs: number;
  /** Aborting kills the process group too (the worker is stopping, the task's deadline passed). */
  signal?: AbortSignal;
  /** Each output line, redacted, as it comes. */
  onLine?: (line: string, stream: StepStream) => void;
}

export interface StepOutcome {
  name: string;
  /** null when the process was killed by a signal. */
  exitCode: number | null;
  killedBy: NodeJS.Signals | null;
  timedOut: boolean;
  aborted: boolean;
  ok: boolean;
  startedAt: string;
  durationMs: number;
  /** The last lines of its output (redacted), for the audit record and the failure's message. */
  outputTail: string[];
  /** Every output line (redacted), for callers that parse what a step printed. */
  output: string[];
}

export interface ExecutorOptions {
  /** Parent of the private step directories (OPS_WORK_DIR); created 0700 when missing. */
  workDir: string;
  /** The worker's environment, from which only BASE_ENV_ALLOWLIST is copied. @default process.env */
  baseEnv?: Readonly<Record<string, string | undefined>>;
  /** Lines kept in outputTail. @default 40 */
  tailLines?: number;
  /** Longest one output line; longer ones are cut (a runaway line must not hold the worker's memory). @default 8192 */
  maxLineBytes?: number;
  /** Lines kept in `output` at most. @default 10000 */
  maxOutputLines?: number;
}

/** Replaces every secret value (and its JSON-escaped form) by `***`; longest first, so no part of a longer one stays. */
export function redactor(secrets: Readonly<Record<string, string>> | undefined): (text: string) => string {
  const values = new Set<string>();
  for (const v of Object.values(secrets ?? {})) {
    if (!v) continue;
    values.add(v);
    values.add(JSON.stringify(v).slice(1, -1));
  }
  const sorted = [...values].filter((v) => v.length > 0).sort((a, b) => b.length - a.length);
  if (sorted.length === 0) return (t) => t;
  return (text) => {
    let out = text;
    for (const v of sorted) out = out.split(v).join('***');
    return out;
  };
}

export class StepExecutor {
  private readonly workDir: string;
  private readonly baseEnv: Readonly<Record<string, string | undefined>>;
  private readonly tailLines: number;
  private readonly maxLineBytes: number;
  private readonly maxOutputLines: number;

  constructor(opts: ExecutorOptions) {
    this.workDir = opts.workDir;
    this.baseEnv = opts.baseEnv ?? process.env;
    this.tailLines = opts.tailLines ?? 40;
    this.maxLineBytes = opts.maxLineBytes ?? 8192;
    this.maxOutputLines = opts.maxOutputLines ?? 10_000;
  }

  /** The environment a step gets: the allowlisted names of the worker's, then the step's own. */
  environment(extra: Readonly<Record<string, string>> = {}): Record<string, string> {
    const env: Record<string, string> = {};
    for (const name of BASE_ENV_ALLOWLIST) {
      const v = this.baseEnv[name];
      if (v !== undefined) env[name] = v;
    }
    return { ...env, ...extra };
  }

  async run(req: StepRequest): Promise<StepOutcome> {
    const startedAt = new Date();
    const redact = redactor(req.secrets);
    const output: string[] = [];
    const tail: string[] = [];
    const emit = (raw: string, stream: StepStream) => {
      const line = redact(raw.length > this.maxLineBytes ? `${raw.slice(0, this.maxLineBytes)}… (cut)` : raw);
      if (output.length < this.maxOutputLines) output.push(line);
      tail.push(line);
      if (tail.length > this.tailLines) tail.shift();
      req.onLine?.(line, stream);
    };

    await mkdir(this.workDir, { recursive: true, mode: 0o700 });
    // mkdtemp creates the directory 0700: nobody else may read the script or replace it before it runs.
    const dir = await mkdtemp(join(this.workDir, 'step-'));
    const file = join(dir, 'step.sh');
    let exitCode: number | null = null;
    let killedBy: NodeJS.Signals | null = null;
    let timedOut = false;
    let aborted = false;
    try {
      await writeFile(file, `${SAFETY_HEADER}${req.body}\n`, { mode: 0o700, flag: 'wx' });
      await new Promise<void>((resolve, reject) => {
        const child = spawn(file, [], {
          cwd: dir, env: this.environment(req.env), stdio: ['pipe', 'pipe', 'pipe'],
          // Its own process group, so a timeout kills the script and everything it started.
          detached: true,
        });
        const killGroup = () => {
          if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch { /* already gone */ }
        };
        const timer = setTimeout(() => { timedOut = true; killGroup(); }, req.timeoutMs);
        const onAbort = () => { aborted = true; killGroup(); };
        if (req.signal?.aborted) onAbort();
        else req.signal?.addEventListener('abort', onAbort, { once: true });

        const pending: Record<StepStream, string> = { stdout: '', stderr: '' };
        const take = (stream: StepStream) => (chunk: Buffer) => {
          const text = pending[stream] + chunk.toString('utf8');
          const lines = text.split('\n');
          pending[stream] = lines.pop() ?? '';
          for (const l of lines) emit(l, stream);
          // A line with no newline in sight is flushed in pieces rather than held without bound.
          if (pending[stream].length > this.maxLineBytes) { emit(pending[stream], stream); pending[stream] = ''; }
        };
        child.stdout.on('data', take('stdout'));
        child.stderr.on('data', take('stderr'));
        child.stdin.on('error', () => { /* the script exited without reading its stdin */ });
        // Secrets on stdin, then EOF: a script that reads stdin again gets nothing more.
        child.stdin.end(req.secrets && Object.keys(req.secrets).length ? `${JSON.stringify(req.secrets)}\n` : '');
        child.once('error', (err) => { clearTimeout(timer); req.signal?.removeEventListener('abort', onAbort); reject(err); });
        // Whatever the group still holds once the script exits (a background child that would keep the pipes open)
        // goes with it, so 'close' follows.
        child.once('exit', () => {
          if (child.pid !== undefined) { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* none left */ } }
        });
        child.once('close', (code, sig) => {
          clearTimeout(timer);
          req.signal?.removeEventListener('abort', onAbort);
          for (const stream of ['stdout', 'stderr'] as const) if (pending[stream]) emit(pending[stream], stream);
          exitCode = code;
          killedBy = sig;
          resolve();
        });
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    if (timedOut) emit(`step ${req.name} timed out after ${req.timeoutMs} ms; its process group was killed`, 'stderr');
    return {
      name: req.name, exitCode, killedBy, timedOut, aborted, ok: exitCode === 0 && !timedOut && !aborted,
      startedAt: startedAt.toISOString(), durationMs: Date.now() - startedAt.getTime(), outputTail: tail, output,
    };
  }
}

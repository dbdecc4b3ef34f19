/**
 * Runs each job's script in a process of its own (process.ts) and serves its page and helper calls (host.ts).
 * The run ends when the child reports done or failure, exits, goes over a limit, or the job's time is up; in
 * every case the child is killed, so nothing of a script outlives its job.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { z } from 'zod';
import { isSriError, SriError } from '../../../shared/errors.ts';
import type { Logger } from '../../../shared/logger.ts';
import { JobTimer } from '../../job/deadline.ts';
import { rewriteModule } from '../module-rewrite.ts';
import type { ScriptArgs, ScriptRunner, ScriptRunOptions } from '../runner.ts';
import type { VerifiedScript } from '../verified-script.ts';
import { MAX_MESSAGE_BYTES, SandboxHost } from './host.ts';
import { CHILD_ENV, childBundle, childCommand, probeSandbox, type SandboxKind, type SandboxLimits } from './process.ts';
import type { FromChild, ToChild } from './protocol.ts';

const STDERR_KEEP = 16 * 1024;

const stepSchema = z.object({ m: z.string().max(64), a: z.array(z.unknown()).max(8) });
const fromChildSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('call'), id: z.number().int().nonnegative(), h: z.number().int().nonnegative(), c: z.array(stepSchema).max(64).optional(), m: z.string().max(64), a: z.array(z.unknown()).max(8) }),
  z.object({ t: z.literal('done') }),
  z.object({ t: z.literal('fail'), kind: z.enum(['invalid', 'timeout', 'error']), name: z.string().max(200), message: z.string().max(100_000) }),
]);

export interface SandboxOptions extends SandboxLimits {
  /** bwrap: namespaces required; auto: bwrap when it works, else process (with a warning); process: no namespaces. */
  readonly mode: 'bwrap' | 'auto' | 'process';
  readonly maxCalls: number;
  /** Default timeout of waits the script starts through the host (downloads, waitForEvent). */
  readonly actionTimeoutMs: number;
}

export class SandboxRunner implements ScriptRunner {
  readonly name: string;
  /**
   * Children started ahead (prepare), each waiting on its stdin for the one `start` message it will ever get. They
   * have seen nothing of any job: taking one instead of spawning is the same isolation, minus the process start.
   */
  private readonly spares: ChildProcess[] = [];
  private spareCount = 0;
  private closed = false;

  private constructor(readonly kind: SandboxKind, private readonly opts: SandboxOptions) {
    this.name = `sandbox-${kind}`;
  }

  /**
   * Checks that the sandbox works here before the worker takes a job: refuses (SANDBOX_UNAVAILABLE) when the mode
   * asks for bubblewrap and it cannot run; with `auto`, falls back to `process` and says so.
   */
  static create(opts: SandboxOptions, logger: Logger): SandboxRunner {
    childBundle();
    const limits = `cpu ${opts.cpuSeconds} s, heap ${opts.memoryMb} MiB, ${opts.maxCalls} calls`;
    if (opts.mode !== 'process') {
      const why = probeSandbox('bwrap', opts);
      if (!why) {
        logger.info({ sandbox: 'bwrap' }, `script sandbox: a process per job in bubblewrap namespaces (user, pid, net, ipc, uts), Node permission model, ${limits}`);
        return new SandboxRunner('bwrap', opts);
      }
      if (opts.mode === 'bwrap') throw new SriError('SANDBOX_UNAVAILABLE', `${new SriError('SANDBOX_UNAVAILABLE').message} Cause: ${why}`);
      logger.warn({ sandbox: 'process', reason: why }, 'script sandbox DEGRADED: bubblewrap cannot run here, so scripts run without namespaces (no network or filesystem isolation beyond Node\'s permission model); WORKER_SANDBOX=auto allowed this');
    }
    const why = probeSandbox('process', opts);
    if (why) throw new SriError('SANDBOX_UNAVAILABLE', `${new SriError('SANDBOX_UNAVAILABLE').message} Cause: ${why}`);
    if (opts.mode === 'process') logger.warn({ sandbox: 'process' }, `script sandbox: a process per job under Node's permission model, ${limits}, WITHOUT namespaces (WORKER_SANDBOX=process)`);
    return new SandboxRunner('process', opts);
  }

  prepare(count: number): void {
    this.spareCount = Math.max(0, count);
    this.refill();
  }

  close(): void {
    this.closed = true;
    for (const c of this.spares.splice(0)) c.kill('SIGKILL');
  }

  private spawnChild(): ChildProcess {
    const { file, args: argv } = childCommand(this.kind, this.opts, childBundle());
    return spawn(file, argv, { env: CHILD_ENV, stdio: ['pipe', 'pipe', 'pipe'] });
  }

  private refill(): void {
    while (!this.closed && this.spares.length < this.spareCount) {
      const child = this.spawnChild();
      // A spare that cannot start or dies while waiting is dropped; the job that would have taken it spawns its own.
      const drop = () => {
        const i = this.spares.indexOf(child);
        if (i >= 0) this.spares.splice(i, 1);
      };
      child.on('error', drop);
      child.on('exit', drop);
      child.stdin?.on('error', () => {});
      this.spares.push(child);
    }
  }

  /** A waiting spare (and another started in its place), else a child spawned now. */
  private takeChild(): ChildProcess {
    let child: ChildProcess | undefined;
    while ((child = this.spares.shift()) !== undefined) {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined && child.stdin?.writable) break;
      child.kill('SIGKILL');
    }
    // The next spare starts after this job's own work is under way, not in its path.
    if (this.spareCount > 0 && !this.closed) setImmediate(() => this.refill());
    return child ?? this.spawnChild();
  }

  async run(script: VerifiedScript, args: ScriptArgs, opts: ScriptRunOptions): Promise<void> {
    const code = rewriteModule(script.text);
    const child = this.takeChild();
    try {
      await this.serve(child, code, args, opts);
    } finally {
      child.stdin?.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }

  private serve(child: ChildProcess, code: string, args: ScriptArgs, opts: ScriptRunOptions): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let stderr = '';
      let violation: SriError | undefined;
      const finish = (e?: unknown) => {
        if (settled) return;
        settled = true;
        if (timer instanceof JobTimer) timer.clear();
        else clearTimeout(timer);
        opts.signal.removeEventListener('abort', onAbort);
        if (e === undefined) resolve();
        else reject(e);
      };
      const kill = (e: SriError) => {
        violation ??= e;
        child.kill('SIGKILL');
        finish(violation);
      };
      const sendLine = (line: string) => {
        if (settled || !child.stdin?.writable) return;
        child.stdin.write(`${line}\n`);
      };
      const send = (m: ToChild) => sendLine(JSON.stringify(m));
      const host = new SandboxHost(args.page, args.page.context(), args.helpers,
        { maxCalls: this.opts.maxCalls, maxPending: 256, timeoutMs: this.opts.actionTimeoutMs }, send, sendLine, kill);

      const timedOut = () => kill(new SriError('EXECUTION_TIMEOUT', `Execution timed out after ${opts.timeoutMs} ms`));
      // With the job's clock, a hand-off's wait for a person does not count (job/deadline.ts JobClock).
      const timer = opts.clock ? opts.clock.timer(timedOut) : setTimeout(timedOut, opts.timeoutMs);
      const onAbort = () => kill(isSriError(opts.signal.reason) ? opts.signal.reason : new SriError('WORKER_SHUTDOWN'));
      if (opts.signal.aborted) { onAbort(); return; }
      opts.signal.addEventListener('abort', onAbort, { once: true });

      child.stdin!.on('error', () => {});
      child.stderr!.setEncoding('utf8');
      child.stderr!.on('data', (d: string) => { stderr = (stderr + d).slice(-STDERR_KEEP); });
      let buffered = '';
      child.stdout!.setEncoding('utf8');
      child.stdout!.on('data', (chunk: string) => {
        buffered += chunk;
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0 && !settled) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          this.onLine(line, host, finish, kill);
        }
        if (Buffer.byteLength(buffered) > MAX_MESSAGE_BYTES) {
          kill(new SriError('SCRIPT_RESOURCE_LIMIT', `The script sent the worker a message over ${MAX_MESSAGE_BYTES} bytes; it was stopped.`));
        }
      });
      child.on('error', (e) => finish(new SriError('SANDBOX_UNAVAILABLE', `The script's sandbox process could not start: ${e.message}`)));
      child.on('close', (codeOrNull, signal) => finish(exitError(codeOrNull, signal, stderr)));

      send({
        t: 'start', code, filename: opts.filename, syncTimeoutMs: Math.min(opts.timeoutMs, 60_000), timeoutMs: this.opts.actionTimeoutMs,
        payload: args.payload, context: args.context, page: host.pageRef, helpers: host.helpersHandle,
      });
    });
  }

  private onLine(line: string, host: SandboxHost, finish: (e?: unknown) => void, kill: (e: SriError) => void): void {
    let msg: FromChild;
    try {
      const parsed = fromChildSchema.safeParse(JSON.parse(line));
      if (!parsed.success) throw new Error(parsed.error.issues[0]?.message);
      msg = parsed.data as FromChild;
    } catch {
      kill(new SriError('SCRIPT_ERROR', 'The script\'s sandbox process broke the protocol (sent a line that is not a valid message); it was stopped.'));
      return;
    }
    if (msg.t === 'call') host.handle(msg);
    else if (msg.t === 'done') finish();
    else finish(failError(msg));
  }
}

function failError(m: Extract<FromChild, { t: 'fail' }>): Error {
  if (m.kind === 'invalid') return new SriError('SCRIPT_INVALID', m.message);
  if (m.kind === 'timeout') return new SriError('EXECUTION_TIMEOUT', 'The script\'s synchronous part ran too long and was stopped.');
  if (/Array buffer allocation failed|allocation failed/i.test(m.message)) {
    return new SriError('SCRIPT_MEMORY_LIMIT', `The script ran out of memory (WORKER_SCRIPT_MEMORY_MB): ${m.message}`);
  }
  const e = new Error(m.message);
  e.name = m.name;
  return e;
}

/** The child ended without reporting: which limit stopped it, or how it died. */
function exitError(code: number | null, signal: NodeJS.Signals | null, stderr: string): SriError {
  if (signal === 'SIGXCPU' || code === 128 + 24) {
    return new SriError('SCRIPT_CPU_LIMIT', 'The script used more CPU time than WORKER_SCRIPT_CPU_SECONDS allows and was stopped.');
  }
  if (/heap out of memory|Allocation failed|Out of memory|Cannot allocate memory/i.test(stderr) || signal === 'SIGABRT' || code === 134) {
    return new SriError('SCRIPT_MEMORY_LIMIT', 'The script used more memory than WORKER_SCRIPT_MEMORY_MB allows and was stopped.');
  }
  const last = stderr.trim().split('\n').slice(-2).join(' ').slice(0, 500);
  return new SriError('SCRIPT_ERROR', `The script's sandbox process ended before the script finished (${signal ?? `exit code ${code}`})${last ? `: ${last}` : ''}.`);
}

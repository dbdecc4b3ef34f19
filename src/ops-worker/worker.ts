/**
 * The operations worker (`sri ops-worker`, docs/operations.md): a host process, the only holder of the container
 * engine's socket, that takes tasks from `sri:ops:jobs` one at a time and runs them as write-execute steps.
 *
 * What must hold:
 *   - One task at a time across every ops worker (takeTask-3.lua); a second waits in the list.
 *   - The running task's lease is renewed every leaseMs / 3. A worker that dies (kill -9) leaves a lease that expires;
 *     the next ops worker to look — or this one restarted under the same id, at once — reports the task
 *     `interrupted`. It is never run again: updates are not idempotent.
 *   - Each task has a deadline (OPS_TASK_TIMEOUT_MS): then its step's process group is killed.
 *   - Every line of every step goes to the task's live log (`sri:ops:task:{id}:logs`, the format of a job's), redacted.
 *   - The outcome goes to `sri:ops:results` (announced on `sri:ops:done`) for the control plane's audit.
 */
import type { Redis } from 'ioredis';
import { keys } from '../shared/keys.ts';
import { LOG_END_FIELD, LOG_LINES_FIELD, type LogLine, type LogStreamEnd } from '../shared/job-logs.ts';
import type { Logger } from '../shared/logger.ts';
import { OpsQueue } from '../shared/ops/queue.ts';
import { OpsTaskMessage, type OpsResultMessage } from '../shared/ops/schemas.ts';
// The batcher is plane-neutral (it imports only the shared log contract); the ops worker batches its lines the same way.
import { LogBatcher, type LogSink } from '../execution-plane/logs/batcher.ts';
import type { OpsWorkerConfig } from './config.ts';
import { StepExecutor } from './executor.ts';
import { TaskContext } from './tasks/context.ts';
import { systemCheck, systemUpdate, type TaskOutcome } from './tasks/system.ts';

export type OpsWorkerState = 'starting' | 'ready' | 'busy' | 'draining' | 'stopped';

/** Lines of a task's live log kept in Redis, and for how long. */
const LOG_MAX_BATCHES = 10_000;
const LOG_TTL_SECONDS = 7 * 24 * 3600;

class OpsLogSink implements LogSink {
  constructor(private readonly redis: Redis) {}
  write(taskId: string, lines: LogLine[]): Promise<void> { return this.add(taskId, LOG_LINES_FIELD, JSON.stringify(lines)); }
  end(taskId: string, summary: LogStreamEnd): Promise<void> { return this.add(taskId, LOG_END_FIELD, JSON.stringify(summary)); }
  private async add(taskId: string, field: string, value: string): Promise<void> {
    const key = keys.opsTaskLogs(taskId);
    const r = await this.redis.pipeline().xadd(key, 'MAXLEN', '~', LOG_MAX_BATCHES, '*', field, value).expire(key, LOG_TTL_SECONDS).exec();
    const failed = r?.find(([err]) => err);
    if (failed?.[0]) throw failed[0];
  }
}

export interface OpsWorkerDeps {
  config: OpsWorkerConfig;
  redis: Redis;
  logger: Logger;
  /** The ops worker's environment, from which the step allowlist is read. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
}

/** What an operator reads when a task hit its time limit: which step was cut, where the services are, what to do. */
function timeoutMessage(limitMs: number, outcome: TaskOutcome): string {
  const d = outcome.details ?? {};
  const step = outcome.error?.step ? ` at step ${outcome.error.step}, whose process group was killed` : '';
  const rollback = d.rolledBack === true
    ? (d.rollbackHealthy ? ` The services were rolled back to ${String(d.runningVersion)} and are healthy.` : ` The services were rolled back to ${String(d.runningVersion)} but are not healthy: look at them now.`)
    : d.rolledBack === false ? ' Nothing was rolled back: look at the services now.' : '';
  return `The task ran longer than OPS_TASK_TIMEOUT_MS (${limitMs} ms) and was stopped${step}.${rollback} Read that step's output (error.outputTail) and see what runs (\`sri ops check\`); then start the task again, and raise OPS_TASK_TIMEOUT_MS if the step only needed longer.`;
}

export class OpsWorker {
  state: OpsWorkerState = 'starting';
  private readonly queue: OpsQueue;
  private readonly executor: StepExecutor;
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;
  private readonly engineEnv: Record<string, string>;

  constructor(private readonly deps: OpsWorkerDeps) {
    const env = deps.env ?? process.env;
    this.queue = OpsQueue.connect(deps.redis);
    this.executor = new StepExecutor({ workDir: deps.config.workDir, baseEnv: env });
    this.engineEnv = {};
    for (const name of deps.config.engineEnv) {
      const v = env[name];
      if (v !== undefined) this.engineEnv[name] = v;
    }
  }

  async start(): Promise<void> {
    const { config, logger } = this.deps;
    // A lease under our own id is a previous process of ours that died: its task was cut short.
    const recovered = await this.queue.recoverLease(config.opsWorkerId);
    if (recovered) logger.warn({ taskId: recovered }, 'the task the previous ops worker process held is reported interrupted');
    this.state = 'ready';
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    const { config, logger } = this.deps;
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      try {
        const recovered = await this.queue.recoverLease(config.opsWorkerId);
        if (recovered) logger.warn({ taskId: recovered }, 'a dead ops worker\'s task is reported interrupted');
        const take = await this.queue.take(config.opsWorkerId, config.leaseMs);
        if (take.kind === 'task') {
          await this.runTask(take.token, take.raw);
          continue;
        }
        if (take.kind === 'invalid') logger.error({ raw: take.raw.slice(0, 500) }, 'dropped an ops task message without a taskId');
      } catch (err) {
        logger.error({ err }, 'ops queue step failed; trying again');
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, config.pollIntervalMs);
        signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
      });
    }
  }

  private async runTask(token: string, raw: string): Promise<void> {
    const { config, logger, redis } = this.deps;
    this.state = 'busy';
    const startedAt = new Date();
    let parsed: ReturnType<typeof OpsTaskMessage.safeParse>;
    try {
      parsed = OpsTaskMessage.safeParse(JSON.parse(raw));
    } catch {
      parsed = OpsTaskMessage.safeParse(undefined);
    }
    const taskId = parsed.success ? parsed.data.taskId : (/"taskId"\s*:\s*"([0-9a-f-]{36})"/.exec(raw)?.[1] ?? '00000000-0000-0000-0000-000000000000');
    const kind = parsed.success ? parsed.data.kind : (raw.includes('system.check') ? 'system.check' : 'system.update');
    const batcher = new LogBatcher({ jobId: taskId, sink: new OpsLogSink(redis), onError: (err) => logger.warn({ err, taskId }, 'live log write failed') });
    const log = (message: string, level: 'info' | 'warn' | 'error' = 'info') => batcher.append({ ts: Date.now(), level, stream: 'worker', message });
    const deadline = Date.now() + config.taskTimeoutMs;
    const abort = new AbortController();
    const onStop = () => abort.abort();
    this.stopping.signal.addEventListener('abort', onStop, { once: true });
    const deadlineTimer = setTimeout(() => { log(`task time limit reached (OPS_TASK_TIMEOUT_MS=${config.taskTimeoutMs})`, 'error'); abort.abort(); }, config.taskTimeoutMs);
    let leaseLost = false;
    const renew = setInterval(() => {
      this.queue.renew(token, config.leaseMs).then((held) => {
        if (!held && !leaseLost) {
          leaseLost = true;
          logger.error({ taskId }, 'lost the ops lease (reported interrupted elsewhere); stopping the task');
          abort.abort();
        }
      }, (err: unknown) => logger.warn({ err, taskId }, 'lease renewal failed'));
    }, Math.max(100, Math.floor(config.leaseMs / 3)));

    const ctx = new TaskContext(config, this.executor, {
      SRI_COMPOSE: config.composeCommand, COMPOSE_FILE: config.composeFile, COMPOSE_PROJECT_NAME: config.composeProject,
      SRI_NODE: process.execPath, ...this.engineEnv,
    }, log, (line, stream) => batcher.append({ ts: Date.now(), level: stream === 'stderr' ? 'warn' : 'info', stream: 'script', message: line }),
    abort.signal, deadline, this.stopping.signal);

    let outcome: TaskOutcome;
    try {
      logger.info({ taskId, kind }, 'ops task started');
      log(`${kind} ${taskId} started on ${config.opsWorkerId}`);
      if (!parsed.success) {
        outcome = { status: 'failed', error: { code: 'VALIDATION_FAILED', message: `The task message is not valid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}` } };
      } else if (parsed.data.kind === 'system.check') {
        outcome = await systemCheck(ctx);
      } else {
        outcome = await systemUpdate(ctx, parsed.data.params);
      }
      if (abort.signal.aborted && outcome.status === 'failed' && !leaseLost && Date.now() >= deadline) {
        outcome = { ...outcome, error: { ...(outcome.error ?? { message: '' }), code: 'OPS_TASK_TIMEOUT', message: timeoutMessage(config.taskTimeoutMs, outcome) } };
      }
    } catch (err) {
      outcome = { status: 'failed', error: { code: 'INTERNAL', message: (err as Error).message } };
    } finally {
      clearTimeout(deadlineTimer);
      clearInterval(renew);
      this.stopping.signal.removeEventListener('abort', onStop);
    }
    log(`${kind} ${taskId} ${outcome.status}${outcome.error ? `: ${outcome.error.code} ${outcome.error.message}` : ''}`, outcome.status === 'done' ? 'info' : 'error');
    await batcher.close();
    const result: OpsResultMessage = {
      taskId, kind, status: outcome.status, workerId: config.opsWorkerId, startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(), steps: ctx.steps, ...(outcome.details ? { details: outcome.details } : {}), ...(outcome.error ? { error: outcome.error } : {}),
    };
    const recorded = await this.queue.complete(token, result).catch((err: unknown) => { logger.error({ err, taskId }, 'recording the ops outcome failed'); return false; });
    logger.info({ taskId, kind, status: outcome.status, recorded }, 'ops task finished');
    this.state = this.stopping.signal.aborted ? 'draining' : 'ready';
  }

  /** Stops taking tasks; a running task is aborted (its group killed) and reported failed. */
  async stop(): Promise<void> {
    this.state = 'draining';
    this.stopping.abort();
    await this.loop;
    this.state = 'stopped';
  }
}

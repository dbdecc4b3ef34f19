/**
 * The worker's queue transitions: each is one Lua file in ./lua (`<verb><Noun>-<numKeys>.lua`), registered once
 * per connection with `defineCommand` under a versioned name (`sri_v1_takeJob`), so two releases with different
 * scripts can share one Redis during a rolling update.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { JOB_RESULT_TTL_SECONDS, keys } from '../../shared/keys.ts';

/** Bump when any script's behaviour changes; the old release keeps calling its own names. */
export const LUA_VERSION = 1;

const SCRIPTS = {
  takeJob: 'takeJob-2.lua',
  completeJob: 'completeJob-4.lua',
  deadLetterJob: 'deadLetterJob-2.lua',
  recordJob: 'recordJob-1.lua',
} as const;

type ScriptName = keyof typeof SCRIPTS;
type LuaCall = (...args: (string | number)[]) => Promise<unknown>;

function commandName(name: ScriptName): string {
  return `sri_v${LUA_VERSION}_${name}`;
}

function loadScript(file: string): { lua: string; numberOfKeys: number } {
  const m = /-(\d+)\.lua$/.exec(file);
  if (!m) throw new Error(`Lua file name ${file} does not end in -<numKeys>.lua`);
  return { lua: readFileSync(new URL(`./lua/${file}`, import.meta.url), 'utf8'), numberOfKeys: Number(m[1]) };
}

/** The status key around its job id, for takeJob, which learns the id only after the pop. */
const STATUS_MARK = '\u0000';
const [statusPrefix, statusSuffix] = keys.jobStatus(STATUS_MARK).split(STATUS_MARK) as [string, string];

export interface CompleteArgs {
  jobId: string;
  orgId: string;
  workerId: string;
  token: string;
  status: 'done' | 'failed';
  resultJson: string;
}

export class QueueCommands {
  constructor(private readonly redis: Redis) {
    for (const [name, file] of Object.entries(SCRIPTS)) {
      redis.defineCommand(commandName(name as ScriptName), loadScript(file));
    }
  }

  private call(name: ScriptName): LuaCall {
    const fn = (this.redis as unknown as Record<string, LuaCall>)[commandName(name)];
    if (!fn) throw new Error(`Lua command ${commandName(name)} is not defined`);
    return fn.bind(this.redis);
  }

  /** Takes the oldest job of `orgId` for `workerId` under `token`; undefined when the queue is empty. */
  async take(orgId: string, workerId: string, token: string): Promise<string | undefined> {
    const raw = await this.call('takeJob')(keys.orgJobs(orgId), keys.workerActive(workerId), token, orgId, statusPrefix, statusSuffix);
    return typeof raw === 'string' ? raw : undefined;
  }

  /** Sets the final status, stores and publishes the result, releases the take. Returns the subscriber count. */
  async complete(a: CompleteArgs): Promise<number> {
    return Number(await this.call('completeJob')(
      keys.jobStatus(a.jobId), keys.jobResult(a.jobId), keys.workerActive(a.workerId), keys.orgDone(a.orgId),
      a.status, a.resultJson, JOB_RESULT_TTL_SECONDS, a.token));
  }

  /** Parks an unrunnable message on the dead-letter list and releases the take. */
  async deadLetter(workerId: string, token: string, record: Record<string, unknown>): Promise<number> {
    return Number(await this.call('deadLetterJob')(keys.dlq, keys.workerActive(workerId), JSON.stringify(record), token));
  }

  /**
   * Dead-letters a message and, in the same MULTI/EXEC, fails the job it names: for a message whose job id and
   * organisation are readable, so the organisation hears about it and the record is kept for an operator.
   */
  async deadLetterAndFail(record: Record<string, unknown>, a: CompleteArgs): Promise<void> {
    const multi = this.redis.multi() as unknown as Record<string, (...args: (string | number)[]) => unknown> & { exec(): Promise<[Error | null, unknown][] | null> };
    multi[commandName('deadLetterJob')]!(keys.dlq, keys.workerActive(a.workerId), JSON.stringify(record), a.token);
    multi[commandName('completeJob')]!(
      keys.jobStatus(a.jobId), keys.jobResult(a.jobId), keys.workerActive(a.workerId), keys.orgDone(a.orgId),
      a.status, a.resultJson, JOB_RESULT_TTL_SECONDS, a.token);
    const replies = await multi.exec();
    const failed = replies?.find(([err]) => err)?.[0];
    if (failed) throw failed;
  }

  /** Resets the worker's stats hash at start (counters are per process). */
  async initStats(workerId: string, startedAt: number): Promise<void> {
    await this.redis.multi()
      .del(keys.workerStats(workerId))
      .hset(keys.workerStats(workerId), { workerId, startedAt, totalJobs: 0, successfulJobs: 0, failedJobs: 0, averageDuration: 0, totalDuration: 0 })
      .exec();
  }

  /** Counts one finished job in the worker's stats hash. */
  async recordJob(workerId: string, success: boolean, durationMs: number, finishedAt: number): Promise<void> {
    await this.call('recordJob')(keys.workerStats(workerId), success ? '1' : '0', Math.round(durationMs), finishedAt);
  }
}

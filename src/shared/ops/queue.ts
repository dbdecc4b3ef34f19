/**
 * The operations worker's queue (docs/operations.md): its own keys under `sri:ops:*`, which only the control plane's
 * and the ops worker's Redis users can reach (deploy/redis/users.acl). One task runs at a time across every ops
 * worker; a task whose worker dies is reported `interrupted` and never run again. One Lua transition per step
 * (./lua/*.lua), registered by the platform's one loader under versioned names (`sri_ops_v1_takeTask`).
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { SriError } from '../errors.ts';
import { keys } from '../keys.ts';
import { registerScripts, type LuaCall, type ScriptArea } from '../lua/scripts.ts';
import { OpsResultMessage, OpsStatus, type OpsTaskMessage } from './schemas.ts';

/** The scripts' numeric replies; the one translator is this file. */
export const OpsCode = Object.freeze({ Ok: 1, Nothing: 2, Busy: 3, Late: 4, Stale: 5, Lost: 6, Invalid: 7 });

const luaPrelude = () => `local CODE = { ${Object.entries(OpsCode).map(([k, v]) => `${k} = ${v}`).join(', ')} }\n`;

export const OPS_SCRIPTS: ScriptArea = Object.freeze({ area: 'ops', version: 1, dir: new URL('./lua/', import.meta.url), prelude: luaPrelude });

export interface OpsLease {
  token: string;
  taskId: string;
  kind: string;
  workerId: string;
  takenAt: number;
  deadline: number;
  raw: string;
}

export type OpsTake =
  | { kind: 'task'; token: string; raw: string; deadline: number }
  | { kind: 'nothing' }
  | { kind: 'busy'; workerId: string }
  | { kind: 'invalid'; raw: string };

export class OpsQueue {
  private constructor(private readonly redis: Redis, private readonly lua: Readonly<Record<string, LuaCall>>) {}

  static connect(redis: Redis): OpsQueue {
    return new OpsQueue(redis, registerScripts(redis, OPS_SCRIPTS));
  }

  private call(name: string, keyList: readonly string[], args: readonly (string | number)[]): Promise<[number, ...string[]]> {
    return this.lua[name]!(keyList, args) as Promise<[number, ...string[]]>;
  }

  /** Control plane: enqueues a task; a second system.update while one is queued or running is refused (OPS_BUSY). */
  async enqueue(task: OpsTaskMessage): Promise<void> {
    const [code, active] = await this.call('enqueueTask', [keys.opsJobs, keys.opsStatuses, keys.opsActiveUpdate],
      [task.taskId, JSON.stringify(task), task.kind === 'system.update' ? '1' : '0']);
    if (code === OpsCode.Busy) {
      throw new SriError('OPS_BUSY', `System update ${active} is still queued or running (or rolling back); wait for its outcome `
        + `(GET /api/operator/system/tasks/${active}, sri ops logs ${active}), then start another.`, { details: { taskId: active } });
    }
  }

  /** Ops worker: takes the oldest task when none runs. */
  async take(workerId: string, leaseMs: number, now = Date.now()): Promise<OpsTake> {
    const token = randomUUID();
    const [code, value = ''] = await this.call('takeTask', [keys.opsJobs, keys.opsLease, keys.opsStatuses], [token, workerId, now, leaseMs]);
    if (code === OpsCode.Ok) return { kind: 'task', token, raw: value, deadline: now + leaseMs };
    if (code === OpsCode.Busy) return { kind: 'busy', workerId: value };
    if (code === OpsCode.Invalid) return { kind: 'invalid', raw: value };
    return { kind: 'nothing' };
  }

  /** False when the lease is no longer the caller's (recovered: the task was reported interrupted). */
  async renew(token: string, leaseMs: number, now = Date.now()): Promise<boolean> {
    const [code] = await this.call('renewLease', [keys.opsLease], [token, now + leaseMs]);
    return code === OpsCode.Ok;
  }

  /** Records the outcome; false when the lease was recovered meanwhile (the outcome is then `interrupted`). */
  async complete(token: string, result: OpsResultMessage): Promise<boolean> {
    const [code] = await this.call('completeTask', [keys.opsLease, keys.opsStatuses, keys.opsResults, keys.opsActiveUpdate],
      [token, result.taskId, result.status, JSON.stringify(OpsResultMessage.parse(result)), keys.opsDone]);
    return code === OpsCode.Ok;
  }

  async lease(): Promise<OpsLease | undefined> {
    const h = await this.redis.hgetall(keys.opsLease);
    if (!h['token']) return undefined;
    return {
      token: h['token'], taskId: h['taskId'] ?? '', kind: h['kind'] ?? '', workerId: h['workerId'] ?? '',
      takenAt: Number(h['takenAt'] ?? 0), deadline: Number(h['deadline'] ?? 0), raw: h['raw'] ?? '',
    };
  }

  /**
   * Ops worker: reports the task of a dead worker's lease `interrupted` — an expired lease, or one held under this
   * worker's own id by a process that is gone (`ownWorkerId`: the caller is that id starting again). Returns its id.
   */
  async recoverLease(ownWorkerId: string, now = Date.now()): Promise<string | undefined> {
    const lease = await this.lease();
    if (!lease) return undefined;
    const mine = lease.workerId === ownWorkerId;
    if (!mine && lease.deadline > now) return undefined;
    const kind = lease.kind === 'system.check' ? 'system.check' : 'system.update';
    const result: OpsResultMessage = {
      taskId: lease.taskId, kind, status: 'interrupted', workerId: lease.workerId,
      startedAt: new Date(lease.takenAt).toISOString(), finishedAt: new Date(now).toISOString(), steps: [],
      error: {
        code: 'OPS_INTERRUPTED',
        message: `The ops worker ${lease.workerId} stopped while it ran this task (killed, or lost Redis for longer than its lease); `
          + 'it is not run again. Check the services (sri ops check) and start a new update if needed.',
      },
    };
    const [code, taskId] = await this.call('recoverLease', [keys.opsLease, keys.opsStatuses, keys.opsResults, keys.opsActiveUpdate],
      [lease.token, now, mine ? '1' : '0', JSON.stringify(result), keys.opsDone]);
    return code === OpsCode.Ok ? taskId : undefined;
  }

  async status(taskId: string): Promise<OpsStatus | undefined> {
    const r = OpsStatus.safeParse(await this.redis.hget(keys.opsStatuses, taskId));
    return r.success ? r.data : undefined;
  }

  /** Control plane: the results waiting to be recorded (malformed ones are returned as errors to drop). */
  async pendingResults(): Promise<{ taskId: string; result?: OpsResultMessage; raw: string }[]> {
    const all = await this.redis.hgetall(keys.opsResults);
    return Object.entries(all).map(([taskId, raw]) => {
      let parsed: unknown;
      try { parsed = JSON.parse(raw); } catch { /* reported as no result */ }
      const r = OpsResultMessage.safeParse(parsed);
      return r.success ? { taskId, result: r.data, raw } : { taskId, raw };
    });
  }

  /** Control plane: the result is in PostgreSQL; Redis forgets it (and its status, which PostgreSQL now holds). */
  async acknowledge(taskId: string): Promise<void> {
    await this.redis.multi().hdel(keys.opsResults, taskId).hdel(keys.opsStatuses, taskId).exec();
  }
}

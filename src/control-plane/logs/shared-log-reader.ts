/**
 * One blocking Redis reader per API process for every live log it serves (docs/security.md "One tenant cannot
 * exhaust shared resources"). A blocked connection can serve nothing else, so a reader per stream meant one Redis
 * connection per open `GET /api/jobs/{id}/logs` — a tenant opening a few hundred streams took that many
 * connections from Redis's `maxclients`, for everyone. Here one connection waits (`XREAD BLOCK`) on the log streams
 * of all watched jobs at once, and only says *that* a stream moved; each response then reads its entries with
 * short, non-blocking reads on the API's ordinary connection, at its own pace — so a slow client never holds the
 * shared reader up, and no entries pile up in memory for it.
 *
 * What must hold:
 *   - No lost wake-up: a follower takes `version()` *before* its non-blocking read and waits with it; any entry the
 *     reader sees after that read bumps the version. A stream that just joined the reader gets one bump once its
 *     position is known, so an entry written between a follower's read and that moment is read too.
 *   - A wait never lasts longer than `maxWaitMs`, whatever happens to the reader (Redis down, a bug): the follower
 *     then simply reads again.
 *   - The watched set changes only between two blocking reads: a new stream is read from the next one (within
 *     `blockMs`), a stream nobody follows any more is dropped from it.
 */
import type { Redis } from 'ioredis';
import { parseLogEntry, type LogEntry } from '../../shared/job-logs.ts';
import { keys } from '../../shared/keys.ts';
import type { Logger } from '../../shared/logger.ts';

export interface SharedLogReaderOptions {
  /** Longest one XREAD blocks (ms): also how late a newly watched stream joins the reader. @default 1000 */
  blockMs?: number;
  /** Pause after a failed read before the next (ms). @default 1000 */
  retryPauseMs?: number;
  logger?: Logger;
}

interface Watched {
  refs: number;
  /** The newest entry id the reader has seen; undefined until it has looked (XREVRANGE). */
  lastId: string | undefined;
  version: number;
  waiters: Set<() => void>;
}

export interface LogWatch {
  /** Changes whenever the reader sees a new entry in the stream. */
  version(): number;
  /** Resolves when the version is no longer `since`, after `maxWaitMs`, or when `signal` aborts. */
  changed(since: number, signal: AbortSignal, maxWaitMs: number): Promise<void>;
  close(): void;
}

export class SharedLogReader {
  private readonly conn: Redis;
  private readonly watched = new Map<string, Watched>();
  private readonly blockMs: number;
  private readonly retryPauseMs: number;
  private loop: Promise<void> | undefined;
  private wakeLoop: (() => void) | undefined;
  private closed = false;

  /** `base` is duplicated into the reader's own connection, opened at the first watch and closed by `close()`. */
  constructor(base: Redis, private readonly opts: SharedLogReaderOptions = {}) {
    this.blockMs = opts.blockMs ?? 1000;
    this.retryPauseMs = opts.retryPauseMs ?? 1000;
    // The API's connection has a command timeout that would cut a blocking read; this one has none, and ioredis'
    // blockingTimeout (BLOCK + grace) stands in for it against a network that fails silently.
    this.conn = base.duplicate({
      connectionName: 'sri-api-logs', lazyConnect: true, maxRetriesPerRequest: null, commandTimeout: undefined,
      blockingTimeout: this.blockMs + 10_000, blockingTimeoutGrace: 5000,
    });
    this.conn.on('error', () => { /* reconnects by itself; the loop logs failed reads */ });
  }

  /** Streams watched now (for tests and metrics). */
  get size(): number {
    return this.watched.size;
  }

  watch(jobId: string): LogWatch {
    return this.watchStream(keys.jobLogs(jobId));
  }

  /** Any stream, by key: a hand-off's frame stream (src/control-plane/logs/live-view.ts) shares the one reader. */
  watchStream(key: string): LogWatch {
    if (this.closed) throw new Error('the shared log reader is closed');
    let w = this.watched.get(key);
    if (!w) {
      w = { refs: 0, lastId: undefined, version: 0, waiters: new Set() };
      this.watched.set(key, w);
      this.wakeLoop?.();
    }
    w.refs++;
    this.loop ??= this.run();
    const entry = w;
    let closed = false;
    return {
      version: () => entry.version,
      changed: (since, signal, maxWaitMs) => new Promise<void>((resolve) => {
        if (entry.version !== since || signal.aborted || closed) return resolve();
        const done = () => {
          clearTimeout(timer);
          entry.waiters.delete(done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, maxWaitMs);
        entry.waiters.add(done);
        signal.addEventListener('abort', done, { once: true });
      }),
      close: () => {
        if (closed) return;
        closed = true;
        if (--entry.refs === 0 && this.watched.get(key) === entry) {
          this.watched.delete(key);
          for (const wake of [...entry.waiters]) wake();
        }
      },
    };
  }

  private bump(w: Watched): void {
    w.version++;
    for (const wake of [...w.waiters]) wake();
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      if (this.watched.size === 0) {
        await new Promise<void>((r) => { this.wakeLoop = r; });
        this.wakeLoop = undefined;
        continue;
      }
      try {
        // Streams that joined since the last read: start after their newest entry. Followers read what is already
        // there themselves; the bump makes those that are waiting read once more.
        for (const [key, w] of this.watched) {
          if (w.lastId !== undefined) continue;
          const newest = await this.conn.xrevrange(key, '+', '-', 'COUNT', 1);
          if (this.watched.get(key) !== w) continue;
          w.lastId = newest[0]?.[0] ?? '0-0';
          this.bump(w);
        }
        const streams = [...this.watched].filter(([, w]) => w.lastId !== undefined);
        if (streams.length === 0) continue;
        // COUNT 1: the reader only needs to know that a stream moved; its entries are the followers' to read.
        const reply = await this.conn.xread('COUNT', 1, 'BLOCK', this.blockMs, 'STREAMS',
          ...streams.map(([k]) => k), ...streams.map(([, w]) => w.lastId!)) as [string, [string, string[]][]][] | null;
        for (const [key, entries] of reply ?? []) {
          const w = this.watched.get(key);
          const last = entries.at(-1);
          if (!w || !last) continue;
          w.lastId = last[0];
          this.bump(w);
        }
      } catch (err) {
        if (this.closed) return;
        this.opts.logger?.warn({ err: (err as Error).message }, 'shared live-log reader: read failed; trying again');
        await new Promise((r) => setTimeout(r, this.retryPauseMs).unref());
      }
    }
  }

  /** Stops the reader and closes its connection; pending waits resolve at once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wakeLoop?.();
    for (const w of this.watched.values()) for (const wake of [...w.waiters]) wake();
    this.watched.clear();
    // Dropping the connection rejects a pending XREAD at once instead of after blockMs.
    this.conn.disconnect();
    await this.loop?.catch(() => {});
  }
}

export interface SharedFollowOptions {
  /** Entries read per non-blocking XREAD. @default 100 */
  count?: number;
  /** Longest a follower waits for the reader before it reads again anyway (ms). @default 5000 */
  maxWaitMs?: number;
  /** The stream. @default keys.jobLogs(jobId) */
  streamKey?: string;
}

/**
 * Follows a job's log stream from after `fromId` (`'0'` = from the start), yielding each batch and each `end` entry,
 * until `signal` aborts — as `followJobLogs` (src/shared/job-logs.ts) does, but without a connection of its own:
 * `reader` says when the stream moved, and the entries are read on `redis` (no BLOCK). The next read happens only
 * when the consumer asks for the next entry, so a consumer that waits for its socket to drain reads nothing meanwhile.
 */
export async function* followSharedJobLogs(reader: SharedLogReader, redis: Redis, jobId: string, fromId: string, signal: AbortSignal, opts: SharedFollowOptions = {}): AsyncGenerator<LogEntry, void, undefined> {
  if (signal.aborted) return;
  const key = opts.streamKey ?? keys.jobLogs(jobId);
  const count = opts.count ?? 100;
  const maxWaitMs = opts.maxWaitMs ?? 5000;
  const watch = reader.watchStream(key);
  let lastId = fromId;
  try {
    // '$' would mean "after the newest entry" anew on every read: pin it.
    if (lastId === '$') lastId = (await redis.xrevrange(key, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
    while (!signal.aborted) {
      const seen = watch.version();
      const reply = await redis.xread('COUNT', count, 'STREAMS', key, lastId) as [string, [string, string[]][]][] | null;
      const entries = reply?.[0]?.[1] ?? [];
      if (entries.length === 0) {
        await watch.changed(seen, signal, maxWaitMs);
        continue;
      }
      for (const [id, fields] of entries) {
        lastId = id;
        const entry = parseLogEntry(id, fields);
        if (entry) yield entry;
        if (signal.aborted) return;
      }
    }
  } finally {
    watch.close();
  }
}

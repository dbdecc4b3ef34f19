/**
 * Live job logs: the contract between the worker that writes a job's log stream and whoever follows it (the
 * control plane's SSE endpoint, `sri logs --follow`). The stream is `sri:job:{jobId}:logs` (keys.jobLogs), a
 * capped Redis stream with a TTL; each entry is one batch of lines:
 *   - field `lines`: JSON array of LogLine, in the order the job produced them;
 *   - or field `end`: JSON LogStreamEnd, written once when the worker closes the job's batcher (one per attempt,
 *     so a retried job's stream holds several).
 * Lines are redacted before they leave the worker; a follower shows them as they are.
 */
import type { Redis } from 'ioredis';
import { keys } from './keys.ts';

export type LogStream = 'script' | 'console' | 'worker';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LogLine {
  /** Epoch ms. */
  ts: number;
  level: LogLevel;
  stream: LogStream;
  message: string;
}

/** What the batcher reports when it closes (also the `end` entry of the stream). */
export interface LogStreamEnd {
  written: number;
  droppedLines: number;
  droppedBatches: number;
}

export const LOG_LINES_FIELD = 'lines';
export const LOG_END_FIELD = 'end';

export type LogEntry =
  | { id: string; lines: LogLine[] }
  | { id: string; end: LogStreamEnd };

/** Parses one stream entry's flat field list (`[field, value, …]`); undefined when it is neither kind. */
export function parseLogEntry(id: string, fields: readonly string[]): LogEntry | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i];
    const value = fields[i + 1]!;
    try {
      if (name === LOG_LINES_FIELD) {
        const lines = JSON.parse(value) as unknown;
        if (Array.isArray(lines)) return { id, lines: lines as LogLine[] };
      } else if (name === LOG_END_FIELD) {
        return { id, end: JSON.parse(value) as LogStreamEnd };
      }
    } catch {
      return undefined;
    }
  }
  return undefined;
}

export interface FollowOptions {
  /** Longest one XREAD blocks (ms) before it is issued again. @default 5000 */
  blockMs?: number;
  /** Entries read per XREAD. @default 100 */
  count?: number;
}

/**
 * Follows a job's log stream from after `fromId` (`'0'` = from the start, `'$'` = only what comes next), yielding
 * each batch (and each `end` entry) as it arrives, until `signal` aborts. The blocking XREAD runs on a connection
 * of its own, duplicated from `redis` and closed when the iteration ends (abort, `break`, or an error), because a
 * blocked connection can serve nothing else. Ending at an `end` entry is the caller's choice: a retried job
 * writes one per attempt.
 */
export async function* followJobLogs(redis: Redis, jobId: string, fromId: string, signal: AbortSignal, opts: FollowOptions = {}): AsyncGenerator<LogEntry, void, undefined> {
  if (signal.aborted) return;
  const key = keys.jobLogs(jobId);
  const blockMs = opts.blockMs ?? 5000;
  const count = opts.count ?? 100;
  // The copy must not inherit a command timeout shorter than the block (the API's connection has 5 s): each XREAD
  // may take blockMs, plus slack for a slow network.
  const conn = redis.duplicate({
    connectionName: `sri-logs-follow-${jobId}`, maxRetriesPerRequest: null, lazyConnect: false, commandTimeout: blockMs + 10_000,
  });
  conn.on('error', () => { /* reconnects by itself; an abort ends the read */ });
  // Aborting drops the connection, which rejects a pending XREAD at once instead of after blockMs.
  const onAbort = () => { conn.disconnect(); };
  signal.addEventListener('abort', onAbort, { once: true });
  let lastId = fromId;
  const read = async (): Promise<[string, [string, string[]][]][] | null> => {
    try {
      // '$' would mean "after the newest entry" anew on every XREAD, losing what arrives between two reads: pin it.
      if (lastId === '$') lastId = (await conn.xrevrange(key, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
      return await conn.xread('COUNT', count, 'BLOCK', blockMs, 'STREAMS', key, lastId) as [string, [string, string[]][]][] | null;
    } catch (err) {
      if (signal.aborted) return null;
      throw err;
    }
  };
  try {
    while (!signal.aborted) {
      const reply = await read();
      if (!reply) continue;
      for (const [, entries] of reply) {
        for (const [id, fields] of entries) {
          lastId = id;
          const entry = parseLogEntry(id, fields);
          if (entry) yield entry;
          if (signal.aborted) return;
        }
      }
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    conn.disconnect();
  }
}

/**
 * One live-log response of `GET /api/jobs/{id}/logs`: the job's Redis log stream (src/shared/job-logs.ts) written
 * to an HTTP response as Server-Sent Events (src/shared/log-events.ts).
 *
 * What must hold:
 *   - Lines go out in stream order; the last line of each batch carries the batch's entry id, so a client resuming
 *     with `Last-Event-ID` loses nothing (at worst a batch cut in the middle comes again).
 *   - An `end` entry ends the response — unless later entries are already in the stream: then it ended an earlier
 *     attempt of a retried job, and the response goes on (an id-only block moves the client's resume point past it).
 *   - A job that finishes without an end entry (its worker died) still ends the response: when two heartbeat ticks
 *     in a row find it finished, what the stream holds is sent and `end` follows with `{status}`. Two ticks, so that
 *     an end entry written just after the status changed is not cut off.
 *   - The response never makes Redis reads pile up for a slow client: the next read waits until the socket drains.
 *   - No connection of its own: the API process's one SharedLogReader says when the stream moved, and entries are
 *     read without BLOCK on `redis`. When `signal` aborts (client gone, or the API closing) the wait ends at once and
 *     the stream stops being watched.
 */
import type { ServerResponse } from 'node:http';
import type { Redis } from 'ioredis';
import { parseLogEntry, type LogEntry, type LogLine } from '../../shared/job-logs.ts';
import { keys } from '../../shared/keys.ts';
import { formatSseComment, formatSseEvent } from '../../shared/sse.ts';
import { LOG_EVENT_END, LOG_EVENT_LINE, type LogEndData } from '../../shared/log-events.ts';
import { TERMINAL_STATUSES } from '../../shared/schemas.ts';
import { followSharedJobLogs, type SharedLogReader } from './shared-log-reader.ts';

export interface LiveLogOptions {
  /** Connections for short reads (XREAD without BLOCK). */
  redis: Redis;
  /** The API process's one blocking reader: tells when the stream has new entries. */
  reader: SharedLogReader;
  jobId: string;
  /** The stream to follow. @default keys.jobLogs(jobId); an ops task's is keys.opsTaskLogs(taskId) */
  streamKey?: string;
  /** Whether a status returned by `jobStatus` is final. @default one of the job statuses TERMINAL_STATUSES */
  isFinal?: (status: string | undefined) => boolean;
  /** Send the entries after this id (`0` = from the start). */
  fromId: string;
  /** Set when the job had already finished at the request: what the stream holds is all there will be. */
  finishedStatus?: string;
  /** The job's status now (Redis status key, else PostgreSQL); undefined when unknown. */
  jobStatus: () => Promise<string | undefined>;
  heartbeatIntervalMs: number;
  /** Longest the response waits for the reader before it reads the stream again anyway (ms). @default 5000 */
  maxWaitMs?: number;
  out: ServerResponse;
  signal: AbortSignal;
}

export type LiveLogOutcome = 'end' | 'aborted';

const isFinal = (s: string | undefined) => s !== undefined && (TERMINAL_STATUSES as readonly string[]).includes(s);

/** Writes the stream to `out` (headers must be sent already) until the job's end or `signal`; does not end `out`. */
export async function writeLiveLog(o: LiveLogOptions): Promise<LiveLogOutcome> {
  const { out, signal } = o;
  const key = o.streamKey ?? keys.jobLogs(o.jobId);
  const final = o.isFinal ?? isFinal;
  const follow = new AbortController();
  const stopFollowing = () => follow.abort();
  signal.addEventListener('abort', stopFollowing, { once: true });

  const write = async (text: string): Promise<void> => {
    if (signal.aborted || out.destroyed || out.writableEnded) return;
    if (out.write(text)) return;
    await new Promise<void>((resolve) => {
      const done = () => { out.off('drain', done); out.off('close', done); resolve(); };
      out.on('drain', done);
      out.on('close', done);
    });
  };

  let lastId = o.fromId;
  let finishedStatus = o.finishedStatus;
  let finalTicks = 0;
  let checking = false;
  const tick = async () => {
    // A socket that is backed up needs no heartbeat, and a comment must not be queued behind megabytes of lines.
    if (!out.writableNeedDrain && !signal.aborted && !out.destroyed) out.write(formatSseComment('heartbeat'));
    if (finishedStatus !== undefined || checking) return;
    checking = true;
    try {
      const status = await o.jobStatus().catch(() => undefined);
      finalTicks = final(status) ? finalTicks + 1 : 0;
      if (finalTicks >= 2) {
        finishedStatus = status;
        follow.abort();
      }
    } finally {
      checking = false;
    }
  };
  const heartbeat = setInterval(() => { void tick(); }, o.heartbeatIntervalMs);

  /** Entries after `id` exist already. */
  const hasEntryAfter = async (id: string) => ((await o.redis.xread('COUNT', 1, 'STREAMS', key, id))?.length ?? 0) > 0;

  /** Sends one entry; true when it ended the response. */
  const send = async (entry: LogEntry): Promise<boolean> => {
    if ('lines' in entry) {
      await write(linesBlock(entry.id, entry.lines));
      lastId = entry.id;
      return false;
    }
    if (await hasEntryAfter(entry.id)) {
      await write(formatSseEvent({ id: entry.id }));
      lastId = entry.id;
      return false;
    }
    await write(formatSseEvent({ id: entry.id, event: LOG_EVENT_END, data: JSON.stringify(entry.end satisfies LogEndData) }));
    return true;
  };

  try {
    if (finishedStatus === undefined) {
      for await (const entry of followSharedJobLogs(o.reader, o.redis, o.jobId, lastId, follow.signal, { maxWaitMs: o.maxWaitMs, ...(o.streamKey ? { streamKey: o.streamKey } : {}) })) {
        if (await send(entry)) return 'end';
        if (signal.aborted) return 'aborted';
      }
      if (signal.aborted) return 'aborted';
    }
    // The job has finished: what the stream holds after lastId is all there will be.
    for (;;) {
      const reply = await o.redis.xread('COUNT', 100, 'STREAMS', key, lastId);
      const entries = reply?.[0]?.[1] ?? [];
      if (entries.length === 0) break;
      for (const [id, fields] of entries) {
        const entry = parseLogEntry(id, fields);
        lastId = id;
        if (entry && await send(entry)) return 'end';
        if (signal.aborted) return 'aborted';
      }
    }
    await write(formatSseEvent({ event: LOG_EVENT_END, data: JSON.stringify({ status: finishedStatus ?? 'unknown' } satisfies LogEndData) }));
    return 'end';
  } finally {
    clearInterval(heartbeat);
    signal.removeEventListener('abort', stopFollowing);
    follow.abort();
  }
}

/** The lines of one batch as `line` events, in one string (one socket write); the entry id on the last one. */
function linesBlock(entryId: string, lines: readonly LogLine[]): string {
  // A batch without lines still moves the client's resume point past it.
  if (lines.length === 0) return formatSseEvent({ id: entryId });
  let out = '';
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    out += formatSseEvent({
      event: LOG_EVENT_LINE,
      id: i === lines.length - 1 ? entryId : undefined,
      data: JSON.stringify({ ts: l.ts, level: l.level, stream: l.stream, message: l.message }),
    });
  }
  return out;
}

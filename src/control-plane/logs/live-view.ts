/**
 * One live view of `GET /api/jobs/{id}/live`: the screencast frames a waiting job's worker writes to its frame stream
 * (src/shared/handoff.ts) relayed to an HTTP response as Server-Sent Events.
 *
 * What must hold:
 *   - A viewer gets the newest frame, never a backlog: on every wake-up the response reads the stream's last entry
 *     only (XREVRANGE COUNT 1), so a slow client skips frames instead of queueing them, and the next read waits
 *     until its socket drained.
 *   - The response ends (`end` event with the job's status) once the hand-off is over — its state key gone — checked
 *     at every wake-up and at least every heartbeat.
 *   - No connection of its own: the API process's SharedLogReader (one XREAD BLOCK for all streams) says when the
 *     frame stream moved; reads are non-blocking on `redis`. `signal` (client gone, API closing) ends it at once.
 */
import type { ServerResponse } from 'node:http';
import type { Redis } from 'ioredis';
import { parseFrameEntry } from '../../shared/handoff.ts';
import { keys } from '../../shared/keys.ts';
import { formatSseComment, formatSseEvent } from '../../shared/sse.ts';
import type { SharedLogReader } from './shared-log-reader.ts';

/** SSE event names of a live view. */
export const LIVE_EVENT_HANDOFF = 'handoff';
export const LIVE_EVENT_FRAME = 'frame';
export const LIVE_EVENT_END = 'end';

export interface LiveViewOptions {
  redis: Redis;
  reader: SharedLogReader;
  jobId: string;
  /** The job's status now (Redis status key, else PostgreSQL). */
  jobStatus: () => Promise<string | undefined>;
  heartbeatIntervalMs: number;
  out: ServerResponse;
  signal: AbortSignal;
  /** Told the bytes of every frame sent (metrics, the benchmark). */
  onFrame?: (bytes: number) => void;
}

export type LiveViewOutcome = 'end' | 'aborted';

/** Writes frames to `out` (headers sent already) until the hand-off ends or `signal` aborts; does not end `out`. */
export async function writeLiveView(o: LiveViewOptions): Promise<LiveViewOutcome> {
  const { out, signal, redis } = o;
  const framesKey = keys.jobLiveFrames(o.jobId);
  const stateKey = keys.jobHandoff(o.jobId);
  const write = async (text: string): Promise<void> => {
    if (signal.aborted || out.destroyed || out.writableEnded) return;
    if (out.write(text)) return;
    await new Promise<void>((resolve) => {
      const done = () => { out.off('drain', done); out.off('close', done); signal.removeEventListener('abort', done); resolve(); };
      out.once('drain', done);
      out.once('close', done);
      signal.addEventListener('abort', done, { once: true });
    });
  };

  const state = await redis.get(stateKey);
  if (state !== null) await write(formatSseEvent({ event: LIVE_EVENT_HANDOFF, data: state }));
  const watch = o.reader.watchStream(framesKey);
  let lastSent = '';
  let lastBeat = Date.now();
  try {
    while (!signal.aborted && !out.destroyed) {
      const seen = watch.version();
      const newest = await redis.xrevrange(framesKey, '+', '-', 'COUNT', 1);
      const entry = newest[0];
      if (entry && entry[0] !== lastSent) {
        const frame = parseFrameEntry(entry[1]);
        lastSent = entry[0];
        if (frame) {
          await write(formatSseEvent({ event: LIVE_EVENT_FRAME, id: entry[0], data: JSON.stringify(frame) }));
          o.onFrame?.(frame.data.length);
        }
      }
      if ((await redis.exists(stateKey)) === 0) {
        await write(formatSseEvent({ event: LIVE_EVENT_END, data: JSON.stringify({ status: (await o.jobStatus()) ?? null }) }));
        return 'end';
      }
      if (Date.now() - lastBeat >= o.heartbeatIntervalMs) {
        await write(formatSseComment('heartbeat'));
        lastBeat = Date.now();
      }
      // A frame, the end of the wait (its keys are deleted: the stream's deletion wakes nobody, so the wait is short),
      // or the heartbeat, whichever comes first.
      await watch.changed(seen, signal, Math.min(o.heartbeatIntervalMs, 1000));
    }
    return 'aborted';
  } finally {
    watch.close();
  }
}

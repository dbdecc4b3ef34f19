/**
 * The event stream of `GET /api/jobs/{id}/logs` (docs: README "Live logs"): the contract between the control plane
 * that writes it and its readers (`sri logs --follow`, browsers' EventSource).
 *   - `event: line`, data `{ts, level, stream, message}`: one log line (src/shared/job-logs.ts LogLine). The last
 *     line of each batch carries the batch's Redis stream entry id as its SSE `id`; a client that reconnects with
 *     `Last-Event-ID` gets the entries after it (lines of a batch cut in the middle may come again, none are lost).
 *   - `event: end`, then the server closes: data is the worker's summary `{written, droppedLines, droppedBatches}`
 *     from the stream's end entry, or `{status}` when the job finished without one (its worker died).
 *   - comments (`: heartbeat`) every LOGS_HEARTBEAT_INTERVAL_MS.
 */
import type { LogLine, LogStreamEnd } from './job-logs.ts';

export const LOG_EVENT_LINE = 'line';
export const LOG_EVENT_END = 'end';

export type LogEndData = LogStreamEnd | { status: string };

/** A Redis stream entry id (`ms-seq`), the only `Last-Event-ID` the endpoint accepts. */
export const STREAM_ENTRY_ID = /^\d{1,20}-\d{1,20}$/;

/** `2026-01-05T10:00:00.000Z INFO script message` — how `sri logs --follow` prints a line. */
export function formatLogLine(l: LogLine): string {
  const d = new Date(l.ts);
  const ts = Number.isNaN(d.getTime()) ? String(l.ts) : d.toISOString();
  return `${ts} ${String(l.level).toUpperCase()} ${l.stream} ${l.message}`;
}

/**
 * `sri logs <jobId> [--follow]`: a job's log through the API (GET /api/jobs/{id}/logs).
 *   - Without --follow: the stored execution.log, printed as it is (`follow=false`).
 *   - With --follow: the live log as Server-Sent Events, one line each `ISO-time LEVEL stream message`, until the
 *     `end` event (exit 0). A finished job whose live log has expired answers with execution.log, printed instead.
 *     A connection that drops (or goes silent past 4 heartbeats) is reopened with Last-Event-ID, a few times.
 * With --json, either way, one JSON object per log line (JSON lines): `{"ts":<epoch ms>,"level","stream","message"}`,
 * the live log's own shape; execution.log's lines (`ISO-time TAG message`, continuation lines indented) are read back
 * into it.
 * API errors become SriErrors with the API's code (main.ts prints `error CODE: message`, exit 1).
 */
import type { Command } from 'commander';
import { ERRORS, SriError, type ErrorCode } from '../shared/errors.ts';
import type { LogLevel, LogLine, LogStream } from '../shared/job-logs.ts';
import { formatLogLine, LOG_EVENT_END, LOG_EVENT_LINE } from '../shared/log-events.ts';
import { SseParser } from '../shared/sse.ts';

type Env = Record<string, string | undefined>;

export interface LogsIo {
  /** Writes text as it is (no newline added). @default process.stdout.write */
  write(text: string): void;
}

export interface LogsOptions {
  apiUrl: string;
  token: string;
  jobId: string;
  /** The log's endpoint. @default /api/jobs/{jobId}/logs (sri ops logs: /api/operator/system/tasks/{id}/logs) */
  path?: string;
  follow: boolean;
  /** One JSON object per log line instead of text. @default false */
  json?: boolean;
  io?: LogsIo;
  /** Stops following (Ctrl-C). */
  signal?: AbortSignal;
  /** Reconnections in a row without receiving anything before giving up. @default 5 */
  maxReconnects?: number;
  /** Silence (ms) after which a followed connection counts as dead: the API's heartbeat is 15 s. @default 60000 */
  idleTimeoutMs?: number;
}

/** Longest one plain request (and the wait for a follow's response headers) may take. */
const REQUEST_TIMEOUT_MS = 30_000;
const RECONNECT_DELAY_MS = 1000;
const STABLE_CONNECTION_MS = 10_000;

export async function runLogs(o: LogsOptions): Promise<void> {
  const io = o.io ?? { write: (t) => { process.stdout.write(t); } };
  const url = new URL(o.path ?? `/api/jobs/${encodeURIComponent(o.jobId)}/logs`, o.apiUrl);
  if (!o.follow) {
    url.searchParams.set('follow', 'false');
    // The deadline is for the answer to start; a long log may take longer to arrive, and is printed as it does.
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(new DOMException('no answer', 'TimeoutError')), REQUEST_TIMEOUT_MS);
    let res: Response;
    try {
      res = await request(url, o, { accept: 'text/plain' }, ctrl.signal);
    } finally {
      clearTimeout(timer);
    }
    await copyText(res, io, o.json);
    return;
  }

  const parser = new SseParser();
  const maxReconnects = o.maxReconnects ?? 5;
  let failures = 0;
  let connected = false;
  for (;;) {
    const conn = new AbortController();
    const stop = () => conn.abort();
    o.signal?.addEventListener('abort', stop, { once: true });
    let idle: NodeJS.Timeout | undefined;
    let openedAt = Number.POSITIVE_INFINITY;
    const armIdle = () => { clearTimeout(idle); idle = setTimeout(stop, o.idleTimeoutMs ?? 60_000); };
    try {
      const headers: Record<string, string> = { accept: 'text/event-stream' };
      if (parser.lastEventId) headers['last-event-id'] = parser.lastEventId;
      armIdle();
      const res = await request(url, o, headers, conn.signal);
      connected = true;
      openedAt = Date.now();
      if (!/^text\/event-stream\b/i.test(res.headers.get('content-type') ?? '')) {
        // The job has finished and its live log is gone: this is execution.log.
        await copyText(res, io, o.json);
        return;
      }
      const decoder = new TextDecoder();
      for await (const chunk of res.body ?? []) {
        armIdle();
        for (const ev of parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }))) {
          // Only progress counts as a working connection (an API that answers and drops at once does not).
          failures = 0;
          if (ev.event === LOG_EVENT_LINE) io.write(`${o.json ? lineJson(ev.data) : lineText(ev.data)}\n`);
          else if (ev.event === LOG_EVENT_END) return;
        }
      }
    } catch (e) {
      if (o.signal?.aborted) return;
      // A dropped or silent connection reconnects below; so does an API that is restarting, once it has answered.
      if (e instanceof SriError && !(connected && e.retryable)) throw e;
    } finally {
      clearTimeout(idle);
      o.signal?.removeEventListener('abort', stop);
    }
    if (o.signal?.aborted) return;
    // A connection that lived a while worked (a quiet job sends no events for long, only heartbeats).
    if (Date.now() - openedAt >= STABLE_CONNECTION_MS) failures = 0;
    if (++failures > maxReconnects) {
      throw new SriError('SERVICE_UNAVAILABLE', `the log stream of job ${o.jobId} from ${o.apiUrl} closed before its end ${failures} times in a row; `
        + `run the command again${parser.lastEventId ? '' : ', or check that the API is up'}`);
    }
    await new Promise((r) => setTimeout(r, RECONNECT_DELAY_MS));
  }
}

async function copyText(res: Response, io: LogsIo, json = false): Promise<void> {
  const decoder = new TextDecoder();
  if (!json) {
    for await (const chunk of res.body ?? []) io.write(decoder.decode(chunk as Uint8Array, { stream: true }));
    io.write(decoder.decode());
    return;
  }
  const reader = new ExecutionLogReader();
  const emit = (lines: JsonLogLine[]) => { for (const l of lines) io.write(`${JSON.stringify(l)}\n`); };
  for await (const chunk of res.body ?? []) emit(reader.feed(decoder.decode(chunk as Uint8Array, { stream: true })));
  emit(reader.feed(decoder.decode()));
  emit(reader.end());
}

function lineText(data: string): string {
  try {
    return formatLogLine(JSON.parse(data) as LogLine);
  } catch {
    return data;
  }
}

/** `sri logs --json`'s line: the live log's LogLine; `ts` null for a stored line that carries no time. */
export type JsonLogLine = Omit<LogLine, 'ts'> & { ts: number | null };

/** A live log line as one JSON line, in the event's own field order; data that is not a line is kept as a message. */
function lineJson(data: string): string {
  try {
    const l = JSON.parse(data) as Partial<LogLine>;
    if (l && typeof l === 'object' && typeof l.message === 'string') {
      return JSON.stringify({ ts: l.ts ?? null, level: l.level ?? null, stream: l.stream ?? null, message: l.message });
    }
  } catch { /* below */ }
  return JSON.stringify({ ts: null, level: null, stream: null, message: data });
}

/** `2026-01-05T10:00:00.000Z SCRIPT message`: execution.log's line (src/execution-plane/job/execution-log.ts). */
const EXEC_LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) (\S+) *(.*)$/;
const LEVELS: readonly string[] = ['debug', 'info', 'warn', 'error'];
/** What execution.log writes under a multi-line message's first line. */
const CONTINUATION = '    ';

/** execution.log's tag: SCRIPT (the script's helpers.log), CONSOLE:<level> (the page's console), or the worker's level. */
function tagFields(tag: string): { level: LogLevel; stream: LogStream } | undefined {
  if (tag === 'SCRIPT') return { level: 'info', stream: 'script' };
  const consoleLevel = /^CONSOLE:([a-z]+)$/.exec(tag)?.[1];
  if (consoleLevel !== undefined) return LEVELS.includes(consoleLevel) ? { level: consoleLevel as LogLevel, stream: 'console' } : undefined;
  const level = tag.toLowerCase();
  return LEVELS.includes(level) ? { level: level as LogLevel, stream: 'worker' } : undefined;
}

/**
 * Reads execution.log text, fed in chunks as it arrives, back into log lines: a line is complete when the next one
 * starts (a message's further lines come indented under it) or the text ends. A line that does not have the format
 * (an older log) is kept whole as the message of a worker `info` line, with the time it starts with if any.
 */
export class ExecutionLogReader {
  private rest = '';
  private pending: JsonLogLine | undefined;

  feed(text: string): JsonLogLine[] {
    const parts = (this.rest + text).split('\n');
    this.rest = parts.pop()!;
    return parts.flatMap((l) => this.line(l.replace(/\r$/, '')));
  }

  end(): JsonLogLine[] {
    const out = this.rest ? this.line(this.rest) : [];
    this.rest = '';
    if (this.pending) out.push(this.pending);
    this.pending = undefined;
    return out;
  }

  private line(text: string): JsonLogLine[] {
    if (this.pending && text.startsWith(CONTINUATION)) {
      this.pending.message += `\n${text.slice(CONTINUATION.length)}`;
      return [];
    }
    const out = this.pending ? [this.pending] : [];
    this.pending = undefined;
    if (text === '') return out;
    const m = EXEC_LINE.exec(text);
    const fields = m ? tagFields(m[2]!) : undefined;
    const ts = m ? Date.parse(m[1]!) : Number.NaN;
    this.pending = m && fields
      ? { ts, ...fields, message: m[3]! }
      : { ts: Number.isNaN(ts) ? null : ts, level: 'info', stream: 'worker', message: m ? `${m[2]} ${m[3]}`.trimEnd() : text };
    return out;
  }
}

/** One GET; an error answer becomes an SriError with the API's code. */
async function request(url: URL, o: LogsOptions, headers: Record<string, string>, signal: AbortSignal): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { ...headers, authorization: `Bearer ${o.token}` }, signal });
  } catch (e) {
    if ((signal.reason as Error | undefined)?.name === 'TimeoutError') throw new SriError('SERVICE_UNAVAILABLE', `the API at ${o.apiUrl} did not answer within ${REQUEST_TIMEOUT_MS / 1000} s`);
    if (signal.aborted) throw e;
    throw new SriError('SERVICE_UNAVAILABLE', `cannot reach the API at ${o.apiUrl} (${String((e as Error).cause ?? (e as Error).message)}); start it with npm start or pass --api`);
  }
  if (res.ok) return res;
  const text = await res.text();
  let err: { code?: string; message?: string } | undefined;
  try {
    err = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
  } catch { /* not JSON */ }
  const code = err?.code && err.code in ERRORS ? (err.code as ErrorCode) : 'INTERNAL';
  throw new SriError(code, err?.message ?? `GET ${url.pathname} → ${res.status}: ${text.slice(0, 300)}`);
}

export function addLogsCommand(program: Command, env: Env): void {
  program.command('logs')
    .description('print a job\'s execution.log, or follow its live log with --follow (through the API)')
    .argument('<jobId>', 'the job id')
    .option('-f, --follow', 'print lines as the job writes them, until it ends')
    .option('--json', 'one JSON object per log line: {"ts","level","stream","message"}')
    .option('--api <url>', 'API base URL', `http://127.0.0.1:${env['PORT'] || 3000}`)
    .option('--token <token>', 'API token (POST /api/auth/login); default: $SRI_TOKEN')
    .action(async (jobId: string, opts: { follow?: boolean; json?: boolean; api: string; token?: string }) => {
      const token = opts.token ?? env['SRI_TOKEN'];
      if (!token) throw new SriError('UNAUTHENTICATED', 'give an API token with --token or SRI_TOKEN; get one from POST /api/auth/login');
      const ctrl = new AbortController();
      // Ctrl-C stops following cleanly; the exit code still says it was interrupted.
      const onSigint = () => { process.exitCode = 130; ctrl.abort(); };
      process.once('SIGINT', onSigint);
      try {
        await runLogs({ apiUrl: opts.api, token, jobId, follow: opts.follow === true, json: opts.json === true, signal: ctrl.signal });
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}

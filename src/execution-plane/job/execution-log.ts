import type { LogLevel, LogStream } from '../../shared/job-logs.ts';
import { LineRedactor, redactSequence, render, type Range, type Redactor } from './redactor.ts';

export type ExecLevel = 'info' | 'warn' | 'error' | 'script';

/** One redacted line as it is also streamed live (src/execution-plane/logs/batcher.ts). */
export interface ExecLine { ts: number; level: LogLevel; stream: LogStream; message: string }

/** Page console lines kept in execution.log (and streamed) per job; the rest are counted, not kept. */
export const MAX_CONSOLE_LINES = 2000;
/** Longest line kept (characters); the rest of a longer one is cut and the cut said, so no line can fill memory. */
export const MAX_LINE_CHARS = 16 * 1024;

interface Entry { ts: number; tag: string; stream: LogStream; raw: string; live: Range[] }

/**
 * The job's execution.log: one line per event, `ISO-time LEVEL text`. Each line is redacted as it is added — with
 * what the lines before it allow (LineRedactor: a value split over several lines) — before `onLine` streams it;
 * `text()` redacts the whole log again, seeing every line at once (redactSequence), so execution.log also loses the
 * first pieces of a split value that the live log had to send before the rest arrived.
 */
export class ExecutionLog {
  private readonly entries: Entry[] = [];
  private readonly lineRedactor: LineRedactor;
  private consoleLines = 0;

  constructor(private readonly redactor: Redactor, private readonly onLine?: (line: ExecLine) => void) {
    this.lineRedactor = new LineRedactor(redactor);
  }

  add(level: ExecLevel, text: string, stream: LogStream = level === 'script' ? 'script' : 'worker'): void {
    const ts = Date.now();
    let raw = String(text);
    if (raw.length > MAX_LINE_CHARS) {
      // Redacted whole before the cut, so a value across the cut cannot survive as an unrecognisable prefix.
      const whole = this.redactor.redact(raw);
      raw = `${whole.slice(0, MAX_LINE_CHARS)} … [${whole.length - MAX_LINE_CHARS} more characters not kept]`;
    }
    const live = this.lineRedactor.ranges(stream, raw);
    const tag = stream === 'console' ? `CONSOLE:${level}` : level.toUpperCase();
    this.entries.push({ ts, tag, stream, raw, live });
    if (this.onLine) {
      this.onLine({ ts, level: level === 'script' ? 'info' : level, stream, message: render(raw, live) });
    }
  }

  /** A line of the page's console (`console.log` in the portal's page or the script's `evaluate`). */
  console(type: string, text: string): void {
    if (++this.consoleLines > MAX_CONSOLE_LINES) return;
    const level = type === 'error' ? 'error' : type === 'warning' ? 'warn' : 'info';
    this.add(level, text, 'console');
    if (this.consoleLines === MAX_CONSOLE_LINES) this.warn(`page console: ${MAX_CONSOLE_LINES} lines kept; further console lines are counted only`);
  }

  /** Console lines the page wrote beyond MAX_CONSOLE_LINES. */
  get consoleLinesDropped(): number {
    return Math.max(0, this.consoleLines - MAX_CONSOLE_LINES);
  }

  info(text: string): void { this.add('info', text); }
  warn(text: string): void { this.add('warn', text); }
  error(text: string): void { this.add('error', text); }

  /** The whole log, redacted with every line in view. */
  text(): string {
    const messages = redactSequence(this.redactor, this.entries.map((e) => ({ stream: e.stream, text: e.raw, extra: e.live })));
    const lines = this.entries.map((e, i) => `${new Date(e.ts).toISOString()} ${e.tag.padEnd(6)} ${messages[i]!.replace(/\r?\n/g, '\n    ')}`);
    return `${lines.join('\n')}\n`;
  }
}

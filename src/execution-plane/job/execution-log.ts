import type { LogLevel, LogStream } from '../../shared/job-logs.ts';
import type { Redactor } from './redactor.ts';

export type ExecLevel = 'info' | 'warn' | 'error' | 'script';

/** One redacted line as it is also streamed live (src/execution-plane/logs/batcher.ts). */
export interface ExecLine { ts: number; level: LogLevel; stream: LogStream; message: string }

/** Page console lines kept in execution.log (and streamed) per job; the rest are counted, not kept. */
export const MAX_CONSOLE_LINES = 2000;

/**
 * The job's execution.log: one line per event, `ISO-time LEVEL text`, every line redacted before it is kept.
 * `onLine` receives each line as well (the job's live log stream), already redacted.
 */
export class ExecutionLog {
  private readonly lines: string[] = [];
  private consoleLines = 0;

  constructor(private readonly redactor: Redactor, private readonly onLine?: (line: ExecLine) => void) {}

  add(level: ExecLevel, text: string, stream: LogStream = level === 'script' ? 'script' : 'worker'): void {
    const ts = Date.now();
    const message = this.redactor.redact(text);
    const tag = stream === 'console' ? `CONSOLE:${level}` : level.toUpperCase();
    this.lines.push(`${new Date(ts).toISOString()} ${tag.padEnd(6)} ${message.replace(/\r?\n/g, '\n    ')}`);
    this.onLine?.({ ts, level: level === 'script' ? 'info' : level, stream, message });
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

  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

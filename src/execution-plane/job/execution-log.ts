import type { Redactor } from './redactor.ts';

export type ExecLevel = 'info' | 'warn' | 'error' | 'script';

/**
 * The job's execution.log: one line per event, `ISO-time LEVEL text`, every line redacted before it is kept.
 * `onLine` is where live log streaming (a later issue) will attach.
 */
export class ExecutionLog {
  private readonly lines: string[] = [];

  constructor(private readonly redactor: Redactor, private readonly onLine?: (line: string) => void) {}

  add(level: ExecLevel, text: string): void {
    const line = `${new Date().toISOString()} ${level.toUpperCase().padEnd(6)} ${this.redactor.redact(text).replace(/\r?\n/g, '\n    ')}`;
    this.lines.push(line);
    this.onLine?.(line);
  }

  info(text: string): void { this.add('info', text); }
  warn(text: string): void { this.add('warn', text); }
  error(text: string): void { this.add('error', text); }

  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

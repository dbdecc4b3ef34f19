/**
 * JSON logs (pino) to stdout and to `{logDir}/{name}-combined.log` + `{logDir}/{name}-error.log`.
 * Fields that may carry secrets are redacted by path; values never reach the log.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  'password', '*.password', 'cookies', '*.cookies', 'credentials', '*.credentials', 'secret', '*.secret',
  'token', '*.token', 'authorization', '*.authorization', 'req.headers.authorization', 'req.headers.cookie',
  'scriptSigningSecret', '*.scriptSigningSecret', 'value', '*.cookie', 'cookie', 'totp', '*.totp',
];

export interface LoggerOptions {
  name: string;
  level?: string;
  /** Write `{name}-combined.log` and `{name}-error.log` here; omit for stdout only. */
  logDir?: string;
  /** Also write to stdout. @default true */
  stdout?: boolean;
  base?: Record<string, unknown>;
}

export function createLogger(opts: LoggerOptions): Logger {
  const level = (opts.level ?? 'info') as pino.Level;
  const streams: pino.StreamEntry[] = [];
  if (opts.stdout !== false) streams.push({ level, stream: process.stdout });
  if (opts.logDir) {
    mkdirSync(opts.logDir, { recursive: true });
    streams.push({ level, stream: pino.destination({ dest: join(opts.logDir, `${opts.name}-combined.log`), sync: false, mkdir: true }) });
    streams.push({ level: 'error', stream: pino.destination({ dest: join(opts.logDir, `${opts.name}-error.log`), sync: false, mkdir: true }) });
  }
  return pino(
    { level, base: { service: opts.name, pid: process.pid, ...opts.base }, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.multistream(streams.length ? streams : [{ level, stream: process.stdout }]),
  );
}

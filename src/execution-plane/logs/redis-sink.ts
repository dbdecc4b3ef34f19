/**
 * The live-log sink of a worker: each batch becomes one entry of the job's stream `sri:job:{jobId}:logs`, written
 * with one pipeline (XADD with an approximate MAXLEN cap, then EXPIRE), so a batch costs one round trip and the
 * stream never outlives its TTL nor grows past its cap however long the job logs. Entry format:
 * src/shared/job-logs.ts.
 */
import type { Redis } from 'ioredis';
import { LOG_END_FIELD, LOG_LINES_FIELD, type LogLine, type LogStreamEnd } from '../../shared/job-logs.ts';
import { keys } from '../../shared/keys.ts';
import { LogBatcher, type LogBatcherOptions, type LogSink } from './batcher.ts';

export interface RedisLogSinkOptions {
  /** Entries (batches) the stream keeps; `MAXLEN ~` trims in whole macro-nodes, so it may hold a few more. */
  maxBatches: number;
  /** Lifetime of the stream, renewed with every batch. */
  ttlSeconds: number;
}

export class RedisLogSink implements LogSink {
  constructor(private readonly redis: Redis, private readonly opts: RedisLogSinkOptions) {}

  write(jobId: string, lines: LogLine[]): Promise<void> {
    return this.add(jobId, LOG_LINES_FIELD, JSON.stringify(lines));
  }

  end(jobId: string, summary: LogStreamEnd): Promise<void> {
    return this.add(jobId, LOG_END_FIELD, JSON.stringify(summary));
  }

  private async add(jobId: string, field: string, value: string): Promise<void> {
    const key = keys.jobLogs(jobId);
    const results = await this.redis.pipeline()
      .xadd(key, 'MAXLEN', '~', this.opts.maxBatches, '*', field, value)
      .expire(key, this.opts.ttlSeconds)
      .exec();
    const failed = results?.find(([err]) => err);
    if (failed?.[0]) throw failed[0];
  }
}

/** The worker's live-log settings (src/execution-plane/config.ts). */
export interface LiveLogSettings {
  logBatchMaxLines: number;
  logBatchMaxBytes: number;
  logFlushIntervalMs: number;
  logMaxPendingBatches: number;
  logStreamMaxBatches: number;
  logTtlSeconds: number;
}

/** A job's batcher writing to its Redis stream, configured from the worker's settings. */
export function createJobLogBatcher(redis: Redis, settings: LiveLogSettings, jobId: string,
  opts: Pick<LogBatcherOptions, 'redact' | 'onError'> = {}): LogBatcher {
  return new LogBatcher({
    jobId,
    sink: new RedisLogSink(redis, { maxBatches: settings.logStreamMaxBatches, ttlSeconds: settings.logTtlSeconds }),
    maxLines: settings.logBatchMaxLines,
    maxBytes: settings.logBatchMaxBytes,
    flushIntervalMs: settings.logFlushIntervalMs,
    maxPendingBatches: settings.logMaxPendingBatches,
    ...opts,
  });
}

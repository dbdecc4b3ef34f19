/** What the control plane's routes and listener are given (dependencies are passed in, never imported globals). */
import type { Redis } from 'ioredis';
import type { Logger } from '../shared/logger.ts';
import type { ResultMessage } from '../shared/schemas.ts';
import type { JobQueue } from '../shared/queue/job-queue.ts';
import type { BlobStore } from '../shared/s3.ts';
import type { Tracer } from '../shared/tracing.ts';
import type { ApiConfig } from './config.ts';
import type { Database } from './db/index.ts';
import type { TokenService } from './http/auth.ts';

export interface ApiContext {
  readonly config: ApiConfig;
  readonly db: Database;
  readonly redis: Redis;
  /** The reliable queue on `redis`: enqueue, cancel, retry, dead letters, quotas. */
  readonly queue: JobQueue;
  readonly blobStore: BlobStore;
  readonly logger: Logger;
  readonly tokens: TokenService;
  /** The API's tracer (service `sri-api`): spans of POST /api/run, enqueue, result.record. */
  readonly tracer: Tracer;
  /**
   * Told when a job's final result is recorded (webhook deliveries). Every path that records a result passes it
   * on — the listener, and a read that finds a waiting result first (jobs/load.ts) — or that job's webhook is lost.
   */
  readonly onJobFinal?: (orgId: string, result: ResultMessage) => void;
}

/** What the control plane's routes and listener are given (dependencies are passed in, never imported globals). */
import type { Redis } from 'ioredis';
import type { Logger } from '../shared/logger.ts';
import type { JobQueue } from '../shared/queue/job-queue.ts';
import type { BlobStore } from '../shared/s3.ts';
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
}

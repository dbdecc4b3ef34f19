/** What the control plane's routes and listener are given (dependencies are passed in, never imported globals). */
import type { Redis } from 'ioredis';
import type { Logger } from '../shared/logger.ts';
import type { BlobStore } from '../shared/s3.ts';
import type { ApiConfig } from './config.ts';
import type { Database } from './db/index.ts';
import type { TokenService } from './http/auth.ts';

export interface ApiContext {
  readonly config: ApiConfig;
  readonly db: Database;
  readonly redis: Redis;
  readonly blobStore: BlobStore;
  readonly logger: Logger;
  readonly tokens: TokenService;
}

/** `sri ops-worker`: the operations worker process (docs/operations.md). Exits on SIGTERM/SIGINT after its task stops. */
import { createLogger } from '../shared/logger.ts';
import { createRedis } from '../shared/redis.ts';
import { loadOpsWorkerConfig } from './config.ts';
import { OpsWorker } from './worker.ts';

export async function runOpsWorkerProcess(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadOpsWorkerConfig(env);
  const logger = createLogger({ name: 'ops-worker', level: config.logLevel, logDir: config.logDir });
  const redis = createRedis(config, { name: `sri-ops-${config.opsWorkerId}` });
  redis.on('error', (err: Error) => logger.warn({ err: err.message }, 'Redis connection error; reconnecting'));
  const worker = new OpsWorker({ config, redis, logger, env });
  await worker.start();
  logger.info({ opsWorkerId: config.opsWorkerId, composeFile: config.composeFile, project: config.composeProject }, 'ops worker ready');
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'ops worker stopping');
    void worker.stop().finally(() => { redis.disconnect(); process.exit(0); });
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
}

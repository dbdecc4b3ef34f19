/**
 * `sri api` / `node --import tsx src/control-plane/main.ts`: loads the configuration (one clear line when it is
 * wrong), starts the API and stops it cleanly on SIGTERM/SIGINT.
 */
import { pathToFileURL } from 'node:url';
import { isSriError } from '../shared/errors.ts';
import { createLogger } from '../shared/logger.ts';
import { startRedisTls } from '../shared/tls-watch.ts';
import { loadApiConfig, type ApiConfig } from './config.ts';
import { startApi } from './server.ts';

export async function runApiProcess(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let config: ApiConfig;
  try {
    config = loadApiConfig(env);
  } catch (e) {
    if (isSriError(e)) {
      console.error(`sri api: ${e.message}`);
      process.exitCode = 1;
      return;
    }
    throw e;
  }
  const logger = createLogger({ name: 'api', level: config.logLevel, logDir: config.logDir });
  // An expired Redis TLS certificate stops the API here (REDIS_TLS_CERT_EXPIRED); see docs/security.md.
  startRedisTls(config, { logger });
  const api = await startApi(config, { logger });
  logger.info({ url: api.url, docs: `${api.url}/docs`, database: config.databaseUrl ? 'postgres' : 'pglite' }, 'API listening');
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    api.close().then(() => process.exit(0), (err: unknown) => {
      logger.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runApiProcess().catch((err: unknown) => {
    console.error(`sri api: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}

/**
 * Worker process entry: `node --import tsx src/execution-plane/main.ts` or `sri worker`.
 * Configuration errors print one line to stderr and exit 1; SIGTERM/SIGINT drain running jobs, then exit 0; Redis
 * unreachable for longer than WORKER_REDIS_MAX_OUTAGE_MS exits 1 (error WORKER_REDIS_LOST) for a supervisor to restart;
 * a revoked worker (error WORKER_REVOKED, docs/security.md "Worker enrolment") exits 77.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { EXIT_CODE_REVOKED } from '../shared/enrolment.ts';
import { isSriError, type SriError } from '../shared/errors.ts';
import { createLogger } from '../shared/logger.ts';
import { startRedisTls } from '../shared/tls-watch.ts';
import { loadWorkerConfig, type WorkerConfig } from './config.ts';

/** 77 for a revoked worker (restarting it is pointless), 1 for everything else. */
const exitCodeOf = (e: unknown) => (isSriError(e) && (e as SriError).code === 'WORKER_REVOKED' ? EXIT_CODE_REVOKED : 1);

export async function runWorkerProcess(env: Record<string, string | undefined> = process.env): Promise<void> {
  let config: WorkerConfig;
  try {
    config = loadWorkerConfig(env);
  } catch (e) {
    if (!isSriError(e)) throw e;
    process.stderr.write(`sri worker: ${e.message}\n`);
    process.exit(1);
  }
  const logger = createLogger({ name: 'worker', level: config.logLevel, logDir: config.logDir });
  let handle;
  try {
    // First: an expired Redis TLS certificate stops the worker before it loads anything else (docs/security.md).
    startRedisTls(config, { logger });
    // Loaded only now, so a configuration error is reported without loading Playwright and the AWS SDK.
    const { startWorker } = await import('./worker.ts');
    handle = await startWorker(config, { logger });
  } catch (e) {
    const msg = isSriError(e) ? e.message : (e as Error).message;
    logger.fatal({ err: msg }, 'worker could not start');
    process.stderr.write(`sri worker: ${msg}\n`);
    logger.flush(() => process.exit(exitCodeOf(e)));
    return;
  }
  const h = handle;
  const onSignal = (signal: NodeJS.Signals) => {
    logger.info({ signal }, 'signal received; draining');
    h.stop().then(
      // Jobs left unsettled (WORKER_SHUTDOWN_TIMEOUT): exit non-zero; their leases expire and they run elsewhere.
      (r) => logger.flush(() => process.exit(r.error ? exitCodeOf(r.error) : 0)),
      (e: unknown) => { logger.error({ err: (e as Error).message }, 'stop failed'); logger.flush(() => process.exit(1)); },
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  // Redis unreachable for longer than WORKER_REDIS_MAX_OUTAGE_MS: exit non-zero for the supervisor to restart us.
  void h.fatal.then((e) => {
    process.stderr.write(`sri worker: error ${e.code}: ${e.message}\n`);
    logger.flush(() => process.exit(exitCodeOf(e)));
  });
}

function runDirectly(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return pathToFileURL(realpathSync(entry)).href === import.meta.url;
  } catch {
    return false;
  }
}

if (runDirectly()) {
  runWorkerProcess().catch((e: unknown) => {
    process.stderr.write(`sri worker: ${(e as Error).message}\n`);
    process.exit(1);
  });
}

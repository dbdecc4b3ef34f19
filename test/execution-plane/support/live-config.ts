/**
 * Writes the live configuration as the API writes it (test/execution-plane/live-config.test.ts covers the API): the
 * next version of the document in keys.workerConfig, then the announcement; resolves once the worker's metrics say it
 * applies that version.
 */
import type { Redis } from 'ioredis';
import { keys } from '../../../src/shared/keys.ts';
import type { LiveConfig } from '../../../src/shared/live-config.ts';
import { metricValue, scrape } from '../../support/metrics.ts';
import { waitFor } from '../../support/services.ts';

export async function applyLiveConfig(redis: Redis, workerHttpUrl: string, version: number, config: LiveConfig): Promise<void> {
  await redis.set(keys.workerConfig, JSON.stringify({ version, config, updatedAt: new Date().toISOString(), updatedBy: 'test' }));
  await redis.publish(keys.workerConfigChanged, JSON.stringify({ version }));
  await waitFor(async () => metricValue(await scrape(`${workerHttpUrl}/metrics`), 'sri_worker_config_version') === version,
    { timeoutMs: 60_000, what: `the worker applies version ${version}` });
}

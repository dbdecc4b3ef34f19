/**
 * `npm run bench:sri-pack [-- --month 3] [-- --rpm 300] [-- --spacing 2000]`
 *
 * Documents per minute for one portal account (issue 16): the flow "comprobantes recibidos" of the SRI pack, run by
 * one embedded worker against the demo portal's imitation of the SRI for one month of facturas (March: 55 documents,
 * three pages), through the real API (PGlite, redis-server, S3), as `sri demo-sri` runs it. Measured twice in ONE run:
 *
 *   unpaced   the `sri` provider with no pacing;
 *   paced     the same with the provider's pacing on: `requestsPerMinute` (default 300, half the imitation's own
 *             limit of 600 a minute) and `minSpacingMs` between job starts (default 2000).
 *
 * A warm-up run first (the worker's first job starts its browser). From the run's queueing to the documents being recorded (GET /api/documents counts them), so the parsing of the
 * XML evidence and the control plane's recording are in it. Prints documents per minute of each and paced/unpaced.
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { runSriDemo } from '../../src/cli/sri-demo.ts';
import { registerProvider } from '../../src/control-plane/providers/catalogue.ts';
import { startDemoPortal } from '../../src/embedded/demo-portal.ts';
import { startWorker } from '../../src/execution-plane/worker.ts';
import { createLogger } from '../../src/shared/logger.ts';
import type { ProviderPacing } from '../../src/shared/provider-pacing.ts';
import { sriDataset, sriDocumentsFor, SRI_DEFAULT_YEAR } from '../../src/sri/generate.ts';
import { testWorkerConfig } from '../../test/execution-plane/support/jobs.ts';
import { startTestApi } from '../../test/support/api.ts';
import { tempDir, TEST_SIGNING_SECRET } from '../../test/support/services.ts';

const { values } = parseArgs({ options: {
  month: { type: 'string', default: '3' }, rpm: { type: 'string', default: '300' }, spacing: { type: 'string', default: '2000' },
} });
const month = Number(values.month);
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');

async function main(): Promise<void> {
  process.stdout.write(`sri-pack bench — ${cpus().length} CPU (${cpus()[0]?.model ?? '?'}), ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}, ${new Date().toISOString()}, load ${load()}\n`);
  const expected = sriDocumentsFor(sriDataset(), { year: SRI_DEFAULT_YEAR, month, tipo: 'factura' }).length;
  const logs = tempDir('sri-bench-pack-');
  const portal = await startDemoPortal({ port: 0 });
  const t = await startTestApi({ LOG_LEVEL: 'silent' });
  const port = new URL(portal.url).port;
  const setPacing = (pacing: ProviderPacing) => registerProvider(t.db, t.redis, {
    id: 'sri', name: 'sri', displayName: 'SRI en línea', allowedHosts: ['*.sri.gob.ec', `127.0.0.1:${port}`, `localhost:${port}`], pacing,
  }, TEST_SIGNING_SECRET);
  await setPacing({});
  const config = testWorkerConfig({ redisUrl: t.redisUrl, s3Endpoint: t.config.s3Endpoint, logDir: logs.path, extra: {
    WORKER_MAX_DOWNLOADS: '200', EXECUTION_TIMEOUT: '600000', PLAYWRIGHT_TIMEOUT: '30000', WORKER_MAX_JOBS: '1', LOG_LEVEL: 'warn',
  } });
  const worker = await startWorker(config, { logger: createLogger({ name: 'worker', level: 'warn', logDir: logs.path, stdout: false }) });
  const rates: Record<string, number> = {};
  try {
    // A warm-up run (January's few facturas), not measured: the first job of a worker starts its browser.
    await runSriDemo({ apiUrl: t.api.url, portalUrl: portal.url, year: SRI_DEFAULT_YEAR, month: 1, type: 'factura', jobTimeoutMs: 900_000, print: () => {}, waiting: () => {} });
    for (const [name, pacing] of [['unpaced', {}], ['paced', { requestsPerMinute: Number(values.rpm), minSpacingMs: Number(values.spacing) }]] as const) {
      await setPacing(pacing);
      const started = Date.now();
      const out = await runSriDemo({ apiUrl: t.api.url, portalUrl: portal.url, year: SRI_DEFAULT_YEAR, month, type: 'factura', jobTimeoutMs: 900_000, print: () => {}, waiting: () => {} });
      const seconds = (Date.now() - started) / 1000;
      if (out.job.status !== 'done' || out.documents.total !== expected) {
        throw new Error(`${name}: job ${out.job.status} ${JSON.stringify(out.job.error)}, ${out.documents.total} of ${expected} documents`);
      }
      rates[name] = expected / (seconds / 60);
      process.stdout.write(`${name.padEnd(8)} ${JSON.stringify(pacing)}: ${expected} documents in ${seconds.toFixed(1)} s = ${rates[name]!.toFixed(1)} documents/min (load ${load()})\n`);
    }
    process.stdout.write(`paced / unpaced: ${(rates['paced']! / rates['unpaced']!).toFixed(2)}\n`);
  } finally {
    await worker.stop({ graceMs: 5000 });
    await t.stop();
    await portal.close();
    logs.remove();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});

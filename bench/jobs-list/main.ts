/**
 * `npm run bench:jobs [-- --jobs N] [-- --samples N]`
 *
 * GET /api/jobs latency over HTTP with one organisation holding 10,000 jobs, on the API as the tests start it
 * (test/support/api.ts: redis-server, s3rver, in-memory PGlite — the embedded default's database). The jobs are
 * inserted in one statement (a spread of statuses, two providers, creation times over 90 days, results and files
 * like real ones), then each page below is asked for `samples` times in turn, after 5 warm-up requests each:
 *
 *   - the first, the middle and the last page (20 jobs a page), unfiltered;
 *   - the same with a filter (`status=failed&status=dead`), with a provider filter, and with a 30-day range;
 *
 * `--index 0001` measures with the index the jobs list had before migration 0007 (org_id, created_at DESC) in place
 * of 0007's (org_id, created_at DESC, id DESC), to show what the migration changes.
 *
 * GET /health is asked in the same rounds as the baseline: the cost of an HTTP round trip through Fastify with no
 * database at all. Prints p50 and p95 per page and the ratio of its p50 to the baseline's p50; the target (issue 12)
 * is under 200 ms per page. Also prints PostgreSQL's plan of the last unfiltered page.
 */
import { randomUUID } from 'node:crypto';
import { cpus, loadavg, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startTestApi } from '../../test/support/api.ts';

const { values } = parseArgs({ options: {
  jobs: { type: 'string', default: '10000' }, samples: { type: 'string', default: '40' }, index: { type: 'string', default: '0007' },
} });
const JOBS = Number(values.jobs);
const SAMPLES = Number(values.samples);
const PAGE_SIZE = 20;
const TARGET_MS = 200;

function machine(): string {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try { cpuModel = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpuModel; } catch { /* not Linux */ }
  return `${cpus().length} CPU (${cpuModel}), ${Math.round(totalmem() / 2 ** 30 * 10) / 10} GiB, node ${process.version}, ${new Date().toISOString()}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`;
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;

async function main() {
  process.stdout.write(`machine: ${machine()}\n`);
  const t = await startTestApi();
  try {
    const org = await t.createOrg();
    const flowId = (await t.db.withOrg(org.orgId, (tx) => tx.query<{ id: string }>('SELECT id FROM flows LIMIT 1')))[0]!.id;
    // A second provider, so that a provider filter keeps only part of the jobs.
    await t.db.asSystem((tx) => tx.query(`INSERT INTO providers (id, name, display_name, allowed_hosts)
      VALUES ('bench', 'bench', 'Bench portal', '["bench.example"]') ON CONFLICT (id) DO NOTHING`));
    const started = performance.now();
    await t.db.asSystem((tx) => tx.query(`INSERT INTO jobs (id, org_id, user_id, provider_id, flow_id, flow_version, status, attempt,
        created_at, started_at, finished_at, duration_ms, worker_id, error_code, error_message, result, files, metadata, trace_id)
      SELECT $1 || '-' || lpad(i::text, 6, '0'), $2, $3,
        CASE WHEN i % 4 = 0 THEN 'bench' ELSE 'demo' END, $4, '1.0.0',
        (ARRAY['done','done','done','done','done','done','done','failed','dead','cancelled','queued','running'])[1 + i % 12], 1,
        now() - make_interval(secs => (($5 - i) * 90 * 86400.0 / $5)), now(), now(), 1000 + i % 5000, 'worker-1',
        CASE WHEN i % 12 IN (7, 8) THEN 'SCRIPT_ERROR' END, CASE WHEN i % 12 IN (7, 8) THEN 'selector not found: table#invoices' END,
        CASE WHEN i % 12 < 7 THEN jsonb_build_object('invoices', jsonb_build_array(
          jsonb_build_object('number', 'INV-' || i, 'date', '2026-01-15', 'amount', '1250.00'),
          jsonb_build_object('number', 'INV-' || (i + 1), 'date', '2026-01-16', 'amount', '98.40'))) END,
        jsonb_build_object('log', 's3://sri-results/results/' || $2 || '/' || $3 || '/' || i || '/execution.log',
          'screenshots', jsonb_build_array('s3://sri-results/results/' || $2 || '/' || $3 || '/' || i || '/screenshot-0.png')),
        jsonb_build_object('period', '2026-01'), md5(i::text)
      FROM generate_series(1, $5) AS i`, [randomUUID(), org.orgId, org.userId, flowId, JOBS]));
    if (values.index === '0001') {
      await t.db.asSystem((tx) => tx.exec(`DROP INDEX jobs_org_created_id_idx;
        CREATE INDEX jobs_org_created_idx ON jobs (org_id, created_at DESC)`));
    }
    await t.db.asSystem((tx) => tx.exec('ANALYZE jobs'));
    process.stdout.write(`index: ${values.index === '0001' ? '0001 (org_id, created_at DESC)' : '0007 (org_id, created_at DESC, id DESC)'}\n`);
    process.stdout.write(`inserted ${JOBS.toLocaleString('en-US')} jobs in ${Math.round(performance.now() - started)} ms\n`);

    const headers = { authorization: `Bearer ${org.token}` };
    const get = async (path: string): Promise<number> => {
      const t0 = performance.now();
      const r = await fetch(t.api.url + path, { headers });
      const body = await r.text();
      const ms = performance.now() - t0;
      if (!r.ok) throw new Error(`GET ${path} → ${r.status} ${body.slice(0, 300)}`);
      return ms;
    };
    const totalOf = async (query: string) => {
      const r = await fetch(`${t.api.url}/api/jobs?pageSize=1${query}`, { headers });
      return ((await r.json()) as { total: number }).total;
    };
    const from = new Date(Date.now() - 45 * 86400_000).toISOString();
    const to = new Date(Date.now() - 15 * 86400_000).toISOString();
    const filters: [string, string][] = [
      ['no filter', ''],
      ['status=failed&status=dead', '&status=failed&status=dead'],
      ['providerId=bench', '&providerId=bench'],
      ['30-day range', `&from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`],
    ];
    const cases: { name: string; path: string }[] = [{ name: 'GET /health (baseline)', path: '/health' }];
    for (const [name, query] of filters) {
      const pages = Math.max(1, Math.ceil((await totalOf(query)) / PAGE_SIZE));
      for (const [which, page] of [['first', 1], ['middle', Math.ceil(pages / 2)], ['last', pages]] as const) {
        cases.push({ name: `${name}, ${which} page (${page} of ${pages})`, path: `/api/jobs?page=${page}&pageSize=${PAGE_SIZE}${query}` });
      }
    }
    for (const c of cases) for (let i = 0; i < 5; i++) await get(c.path);
    const samples = new Map(cases.map((c) => [c.name, [] as number[]]));
    // Rounds over every case, so a burst of load from elsewhere on the machine lands on all of them alike.
    for (let i = 0; i < SAMPLES; i++) for (const c of cases) samples.get(c.name)!.push(await get(c.path));

    const stats = cases.map((c) => {
      const s = samples.get(c.name)!.sort((a, b) => a - b);
      return { name: c.name, p50: quantile(s, 0.5), p95: quantile(s, 0.95) };
    });
    const base = stats[0]!.p50;
    process.stdout.write(`\n${SAMPLES} samples per page, ${PAGE_SIZE} jobs per page, ${JOBS.toLocaleString('en-US')} jobs in the organisation\n`);
    process.stdout.write(`| Request | p50 ms | p95 ms | p50 / baseline p50 |\n| --- | ---: | ---: | ---: |\n`);
    for (const s of stats) process.stdout.write(`| ${s.name} | ${s.p50.toFixed(1)} | ${s.p95.toFixed(1)} | ${(s.p50 / base).toFixed(1)} |\n`);
    const worst = Math.max(...stats.slice(1).map((s) => s.p95));
    process.stdout.write(`\nworst p95 of a jobs page: ${worst.toFixed(1)} ms (target < ${TARGET_MS} ms): ${worst < TARGET_MS ? 'met' : 'NOT met'}\n`);

    const lastOffset = (Math.ceil(JOBS / PAGE_SIZE) - 1) * PAGE_SIZE;
    for (const [which, offset] of [['first', 0], ['last', lastOffset]] as const) {
      const plan = await t.db.withOrg(org.orgId, (tx) => tx.query<{ 'QUERY PLAN': string }>(
        `EXPLAIN ANALYZE SELECT id FROM jobs j ORDER BY j.created_at DESC, j.id DESC LIMIT ${PAGE_SIZE} OFFSET ${offset}`));
      process.stdout.write(`\nplan of the ${which} unfiltered page's ids:\n${plan.map((r) => `  ${r['QUERY PLAN']}`).join('\n')}\n`);
    }
  } finally {
    await t.stop();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});

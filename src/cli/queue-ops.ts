/**
 * Operator commands on the queue: `sri dlq list|show|requeue|purge`, `sri cancel`, `sri quota get|set`. They talk
 * to Redis directly (REDIS_URL) through JobQueue, so they work while the API is down and need no token; whoever can
 * reach Redis is an operator of every organisation. They do not touch PostgreSQL: a job's record follows from the
 * result the queue publishes (see docs/queue.md "Operating the queue").
 *
 * Output is JSON, or a small table for `dlq list`; failures are SriErrors (main.ts prints `error CODE: message`).
 */
import type { Command } from 'commander';
import { commonSettings, loadConfig } from '../shared/config.ts';
import { SriError } from '../shared/errors.ts';
import { JobQueue, type DlqEntry } from '../shared/queue/job-queue.ts';
import { createRedis, type Redis } from '../shared/redis.ts';
import { integerOption, integerOrNoneOption } from './options.ts';

type Env = Record<string, string | undefined>;

export interface CliIo {
  /** Writes one line (or block) of normal output. @default console.log */
  out(text: string): void;
  /** Writes one line (or block) of diagnostics: commander's usage errors. @default process.stderr */
  err?(text: string): void;
}

const cliSettings = { redisUrl: commonSettings.redisUrl, redisClusterNodes: commonSettings.redisClusterNodes } as const;

/** The URL without its password, for messages. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'REDIS_URL';
  }
}

/** Opens Redis and the queue on it for one command (see withRedis). */
function withQueue<T>(env: Env, fn: (queue: JobQueue) => Promise<T>): Promise<T> {
  return withRedis(env, async (redis) => fn(await JobQueue.connect(redis)));
}

/**
 * Opens Redis for one command and closes it after. Unlike the long-running processes (which retry forever), a
 * command gives up after a few seconds with SERVICE_UNAVAILABLE.
 */
export async function withRedis<T>(env: Env, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const config = loadConfig(cliSettings, env);
  const { redisUrl } = config;
  const redis: Redis = createRedis(config, {
    name: 'sri-cli', lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3000, commandTimeout: 10_000,
    retryStrategy: (times) => (times > 3 ? null : 200),
  });
  redis.on('error', () => { /* reported through the failing command */ });
  try {
    try {
      await redis.connect();
    } catch (err) {
      throw new SriError('SERVICE_UNAVAILABLE', `cannot reach Redis at ${redactUrl(redisUrl)}; start it (npm start) or set REDIS_URL`, { cause: err });
    }
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

/** A quota option: a number sets it (0 pauses the organisation), `none` removes it. */
const quotaOption = integerOrNoneOption(0, 1_000_000);

export function entryJson(e: DlqEntry) {
  return { id: e.id, orgId: e.orgId, jobId: e.jobId ?? null, reason: e.reason, at: new Date(e.at).toISOString(), truncated: e.truncated, raw: e.raw };
}

/** A plain table: one header row, columns padded to their widest cell, long cells cut with "…". */
export function table(headers: string[], rows: string[][], maxCell = 60): string {
  const cut = (s: string) => (s.length > maxCell ? `${s.slice(0, maxCell - 1)}…` : s);
  const cells = [headers, ...rows.map((r) => r.map((c) => cut(c.replace(/\s+/g, ' '))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

export function addQueueCommands(program: Command, env: Env, io: CliIo = { out: (t) => console.log(t) }): void {
  const json = (v: unknown) => io.out(JSON.stringify(v, null, 2));

  const dlq = program.command('dlq').description('dead letters: jobs that could not run (malformed, poisoned, out of attempts); talks to REDIS_URL');

  dlq.command('list')
    .description('list dead letters, newest first (a table; --json for JSON)')
    .option('--org <orgId>', 'only this organisation\'s entries')
    .option('--limit <n>', 'how many', integerOption(1, 1000), 20)
    .option('--offset <n>', 'skip this many', integerOption(0, 1_000_000), 0)
    .option('--json', 'print JSON instead of a table')
    .action(async (opts: { org?: string; limit: number; offset: number; json?: boolean }) => {
      const { limit, offset } = opts;
      const entries = await withQueue(env, (q) => q.dlqList(opts.org, offset, limit));
      if (opts.json) return json({ entries: entries.map(entryJson), offset, limit });
      if (entries.length === 0) return io.out(`no dead letters${opts.org ? ` for organisation ${opts.org}` : ''}`);
      io.out(table(['ID', 'ORG', 'JOB', 'AT', 'REASON'],
        entries.map((e) => [e.id, e.orgId, e.jobId ?? '-', new Date(e.at).toISOString(), e.reason])));
    });

  dlq.command('show')
    .description('print one dead letter with its raw payload (JSON)')
    .argument('<id>', 'entry id (from `sri dlq list`)')
    .action(async (id: string) => {
      const entry = await withQueue(env, (q) => q.dlqGet(id));
      if (!entry) throw new SriError('NOT_FOUND', `no dead-letter entry ${id}; list them with sri dlq list`);
      json(entryJson(entry));
    });

  dlq.command('requeue')
    .description('push a dead letter back to its organisation\'s queue and remove it from the list')
    .argument('<id>', 'entry id')
    .action(async (id: string) => {
      const entry = await withQueue(env, async (q) => {
        const found = await q.dlqGet(id);
        if (found?.truncated) throw new SriError('DLQ_ENTRY_TRUNCATED', `dead-letter entry ${id} holds only the start of its message (it was too large); it cannot be requeued`);
        if (!found || !(await q.dlqRequeue(id))) throw new SriError('NOT_FOUND', `no dead-letter entry ${id}; list them with sri dlq list`);
        return found;
      });
      json({ id, orgId: entry.orgId, jobId: entry.jobId ?? null, requeued: true });
    });

  dlq.command('purge')
    .description('delete dead letters for good (all, or one organisation\'s); needs --yes')
    .option('--org <orgId>', 'only this organisation\'s entries')
    .option('--yes', 'confirm')
    .action(async (opts: { org?: string; yes?: boolean }) => {
      if (!opts.yes) {
        throw new SriError('VALIDATION_FAILED', `purge deletes ${opts.org ? `every dead letter of organisation ${opts.org}` : 'every dead letter of every organisation'} for good; add --yes to confirm`);
      }
      const purged = await withQueue(env, (q) => q.dlqPurge(opts.org));
      json({ purged, orgId: opts.org ?? null });
    });

  program.command('cancel')
    .description('cancel a job: a queued one is removed, a running one is stopped by its worker within 2 s')
    .argument('<jobId>', 'the job id')
    .requiredOption('--org <orgId>', 'the job\'s organisation')
    .action(async (jobId: string, opts: { org: string }) => {
      const outcome = await withQueue(env, (q) => q.cancel(opts.org, jobId));
      if (outcome === 'final') throw new SriError('JOB_FINAL', `job ${jobId} has already finished; there is nothing to cancel`);
      if (outcome === 'unknown') throw new SriError('NOT_FOUND', `Redis knows no job ${jobId} of organisation ${opts.org}`);
      json({ jobId, orgId: opts.org, status: outcome });
    });

  const quota = program.command('quota').description('per-organisation quotas, picked up by workers without restart');

  quota.command('get')
    .description('print an organisation\'s quotas (null = no limit)')
    .argument('<orgId>', 'the organisation id')
    .action(async (orgId: string) => {
      json({ orgId, ...(await withQueue(env, (q) => q.getQuota(orgId))) });
    });

  quota.command('set')
    .description('set an organisation\'s quotas; a number sets a limit, "none" removes it, an option left out stays')
    .argument('<orgId>', 'the organisation id')
    .option('--max-concurrent <n>', 'jobs of the organisation running at once (or none)', quotaOption)
    .option('--per-minute <n>', 'jobs of the organisation started per minute (or none)', quotaOption)
    .action(async (orgId: string, opts: { maxConcurrent?: number | 'none'; perMinute?: number | 'none' }) => {
      const limit = (v: number | 'none' | undefined) => (v === 'none' ? null : v);
      const q = { maxConcurrent: limit(opts.maxConcurrent), perMinute: limit(opts.perMinute) };
      if (q.maxConcurrent === undefined && q.perMinute === undefined) {
        throw new SriError('VALIDATION_FAILED', 'give --max-concurrent and/or --per-minute (a number, or none to remove the limit)');
      }
      const set = Object.fromEntries(Object.entries(q).filter(([, v]) => v !== undefined)) as { maxConcurrent?: number | null; perMinute?: number | null };
      json({ orgId, ...(await withQueue(env, async (queue) => { await queue.setQuota(orgId, set); return queue.getQuota(orgId); })) });
    });
}

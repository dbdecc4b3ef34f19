/**
 * One run per due time across API replicas (docs/schedules.md "Exactly one run per due time"): two API processes
 * (`src/control-plane/main.ts`, each with its scheduler ticking every 100 ms) share one redis-server, one s3rver and
 * one PostgreSQL database (PGlite serves one process only). A schedule due every 2 seconds makes exactly one job —
 * one submission, one queued message — per due time, with none left out; both processes then stop cleanly on
 * SIGTERM.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { migrate, openDatabase, type Database } from '../../src/control-plane/db/index.ts';
import { boundToParent } from '../../src/embedded/bound-child.ts';
import { freePort } from '../../src/embedded/ports.ts';
import { keys } from '../../src/shared/keys.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { startTestPostgres, type TestPostgres } from '../support/postgres.ts';
import { seedDemoProvider } from '../support/providers.ts';
import { startTestRedis, startTestS3, TEST_JWT_SECRET, TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';

interface Replica { child: ChildProcess; url: string; lines: Record<string, unknown>[]; output(): string; exited: Promise<number | null> }

describe('schedules on two API replicas', () => {
  let pg: TestPostgres;
  let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
  let s3: Awaited<ReturnType<typeof startTestS3>>;
  let db: Database;
  let redis: Redis;
  let databaseUrl: string;
  const replicas: Replica[] = [];

  async function startReplica(): Promise<Replica> {
    const port = await freePort();
    const child = spawn(...boundToParent(process.execPath, ['--import', 'tsx', 'src/control-plane/main.ts']), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env['PATH'], NODE_NO_WARNINGS: '1', JWT_SECRET: TEST_JWT_SECRET, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET,
        REDIS_URL: redisServer.url, S3_ENDPOINT: s3.endpoint, DATABASE_URL: databaseUrl, PORT: String(port), LOG_LEVEL: 'info',
        RUN_RATE_LIMIT_PER_USER: '100000', RUN_RATE_LIMIT_PER_ORG: '100000', SCHEDULER_TICK_MS: '100',
      },
    });
    let output = '';
    const lines: Record<string, unknown>[] = [];
    let partial = '';
    child.stdout!.on('data', (d: Buffer) => {
      output += d.toString();
      const text = partial + d.toString();
      const parts = text.split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) {
        try { lines.push(JSON.parse(line) as Record<string, unknown>); } catch { /* not a log line */ }
      }
    });
    child.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const replica = { child, url: `http://127.0.0.1:${port}`, lines, output: () => output, exited };
    replicas.push(replica);
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`API exited early: ${output}`);
      return (await fetch(`${replica.url}/ready`)).status === 200;
    }, { what: 'API replica ready', timeoutMs: 60_000 });
    return replica;
  }

  before(async () => {
    [pg, redisServer, s3] = await Promise.all([startTestPostgres(), startTestRedis(), startTestS3()]);
    databaseUrl = await pg.createDatabase();
    db = await openDatabase({ databaseUrl });
    await migrate(db);
    await seedDemoProvider(db);
    redis = createRedis(redisServer.url);
  });

  after(async () => {
    for (const r of replicas) if (r.child.exitCode === null) r.child.kill('SIGKILL');
    redis?.disconnect();
    await db?.close();
    await Promise.all([pg?.stop(), redisServer?.stop(), s3?.close()]);
  });

  it('makes exactly one job per due time, whichever replica claims it, and both stop cleanly', async () => {
    const [one, two] = [await startReplica(), await startReplica()];
    const call = async (r: Replica, method: string, path: string, token: string | undefined, body?: unknown) => {
      const res = await fetch(r.url + path, {
        method, ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      });
      const json = await res.json() as any;
      assert.ok(res.ok, `${method} ${path} → ${res.status} ${JSON.stringify(json)}`);
      return json;
    };
    const reg = await call(one, 'POST', '/api/auth/register', undefined, {
      email: `replicas-${randomUUID()}@example.com`, password: 'correct-horse-42', name: 'User', orgName: `Org ${randomUUID()}`,
    });
    const token = reg.token as string;
    const orgId = reg.org.id as string;
    await call(two, 'POST', '/api/providers/demo/connect', token, { cookies: [] });
    const flow = await call(one, 'POST', '/api/flows', token, { providerId: 'demo', version: '1.0.0', name: 'F', steps: [{ type: 'navigate', url: 'http://127.0.0.1:3100/' }] });
    await call(two, 'POST', `/api/flows/${flow.flow.id}/activate`, token, {});
    const { schedule } = await call(one, 'POST', '/api/schedules', token, { providerId: 'demo', cron: '*/2 * * * * *', timezone: 'UTC' });

    const runs = async () => (await call(two, 'GET', `/api/schedules/${schedule.id}/runs?limit=500`, token)).runs as { jobId: string; dueAt: string }[];
    await waitFor(async () => (await runs()).length >= 4, { what: 'four runs of the schedule', timeoutMs: 60_000 });
    await call(two, 'POST', `/api/schedules/${schedule.id}/pause`, token);
    // A claim made just before the pause finishes with its job.
    await waitFor(async () => {
      const rows = await db.asSystem((tx) => tx.query<{ pending_due_at: Date | null }>('SELECT pending_due_at FROM schedules WHERE id = $1', [schedule.id]));
      return rows[0]!.pending_due_at === null;
    }, { what: 'no claim in progress', timeoutMs: 60_000 });

    const made = await runs();
    const due = made.map((r) => Date.parse(r.dueAt)).sort((a, b) => a - b);
    assert.ok(due.length >= 4);
    for (let i = 1; i < due.length; i++) assert.equal(due[i]! - due[i - 1]!, 2000, `every due time once, none left out: ${JSON.stringify(made)}`);
    const jobs = await db.asSystem((tx) => tx.query<{ id: string }>('SELECT id FROM jobs WHERE org_id = $1', [orgId]));
    assert.equal(jobs.length, made.length, 'no job besides the runs');
    const queued = (await redis.lrange(keys.orgJobs(orgId), 0, -1)).map((m) => (JSON.parse(m) as { jobId: string }).jobId).sort();
    assert.deepEqual(queued, made.map((r) => r.jobId).sort(), 'each run queued once');

    // One submission per due time, across both processes (the other process's claim lost, not replayed).
    const submitted = [one, two].flatMap((r) => r.lines.filter((l) => l['msg'] === 'scheduled run submitted' && l['scheduleId'] === schedule.id));
    assert.deepEqual(submitted.map((l) => Date.parse(String(l['dueAt']))).sort((a, b) => a - b), due);
    for (const r of [one, two]) assert.ok(r.lines.some((l) => l['msg'] === 'scheduler started'), 'both replicas run a scheduler');

    for (const r of [one, two]) r.child.kill('SIGTERM');
    for (const r of [one, two]) assert.equal(await r.exited, 0, r.output().slice(-2000));
  });
});

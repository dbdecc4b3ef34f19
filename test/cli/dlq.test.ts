/**
 * The operator commands on the queue — `sri dlq list|show|requeue|purge`, `sri cancel`, `sri quota get|set` —
 * against a real redis-server. Most run in-process (buildProgram with a captured output); two go through the bin
 * launcher to prove the exit code and the one-line `error CODE: message` on stderr.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { CommanderError } from 'commander';
import { buildProgram } from '../../src/cli/main.ts';
import { freePort } from '../../src/embedded/ports.ts';
import { isSriError, type ErrorCode } from '../../src/shared/errors.ts';
import { JobQueue } from '../../src/shared/queue/job-queue.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { signScript } from '../../src/shared/signing.ts';
import type { JobMessage } from '../../src/shared/schemas.ts';
import { startTestRedis, TEST_SIGNING_SECRET } from '../support/services.ts';
import { runSri } from '../support/cli.ts';

const WORKER = 'cli-test-worker';


function message(orgId: string): JobMessage {
  const script = 'export default async function run({ helpers }) { helpers.log("hi"); }\n';
  const { scriptHash, signature } = signScript(script, TEST_SIGNING_SECRET);
  return {
    jobId: randomUUID(), orgId, userId: 'user-1', providerId: 'demo', providerName: 'demo', flowId: 'flow-1', flowVersion: '1.0.0',
    scriptContent: script, scriptHash, signature, createdAt: new Date().toISOString(), attempt: 1,
  };
}

describe('sri dlq / cancel / quota (operator commands on Redis)', () => {
  let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
  let redis: Redis;
  let queue: JobQueue;
  let env: Record<string, string>;
  const orgA = `cli-a-${randomUUID().slice(0, 8)}`;
  const orgB = `cli-b-${randomUUID().slice(0, 8)}`;

  /** What the last in-process run wrote as diagnostics (commander's usage errors). */
  let errLines: string[] = [];
  /** Runs `sri …args` in-process; returns what it printed, or throws its SriError (or CommanderError: usage). */
  const sri = async (...args: string[]): Promise<string> => {
    const lines: string[] = [];
    errLines = [];
    await buildProgram(env, { out: (t) => lines.push(t), err: (t) => errLines.push(t) }).parseAsync(['node', 'sri', ...args]);
    return lines.join('\n');
  };
  /** A usage error: refused by commander before anything runs, naming the option (exit 2 through main). */
  const refusedOption = async (args: string[], option: RegExp) => {
    await assert.rejects(sri(...args), (e: unknown) => {
      assert.ok(e instanceof CommanderError, String(e));
      assert.equal(e.code, 'commander.invalidArgument');
      assert.match(e.message, option);
      return true;
    });
    assert.match(errLines.join('\n'), option);
  };
  const sriJson = async (...args: string[]) => JSON.parse(await sri(...args));
  const rejectsWith = async (code: ErrorCode, args: string[], message?: RegExp) => {
    await assert.rejects(sri(...args), (e: unknown) => {
      assert.ok(isSriError(e), String(e));
      assert.equal(e.code, code);
      if (message) assert.match(e.message, message);
      return true;
    });
  };

  before(async () => {
    redisServer = await startTestRedis();
    redis = createRedis(redisServer.url);
    queue = await JobQueue.connect(redis);
    env = { REDIS_URL: redisServer.url };
  });
  after(async () => {
    redis?.disconnect();
    await redisServer?.stop();
  });

  it('lists, shows, requeues and purges dead letters, by organisation', async () => {
    const requeueable = message(orgA);
    const a1 = await queue.deadLetter(orgA, JSON.stringify(requeueable), 'attempts exhausted (BROWSER_ERROR)', requeueable.jobId);
    const a2 = await queue.deadLetter(orgA, '{not json', 'not JSON');
    const b1 = await queue.deadLetter(orgB, '[]', 'not a job');

    const table = await sri('dlq', 'list');
    const [header, ...rows] = table.split('\n');
    assert.match(header!, /^ID\s+ORG\s+JOB\s+AT\s+REASON$/);
    for (const id of [a1, a2, b1]) assert.ok(rows.some((r) => r.startsWith(id)), `table lists ${id}:\n${table}`);
    assert.ok(rows.some((r) => r.includes(requeueable.jobId) && r.includes('attempts exhausted')));

    const onlyB = await sriJson('dlq', 'list', '--org', orgB, '--json');
    assert.deepEqual(onlyB.entries.map((e: { id: string }) => e.id), [b1]);
    assert.equal(onlyB.entries[0].raw, '[]');
    assert.equal((await sriJson('dlq', 'list', '--org', orgA, '--limit', '1', '--json')).entries.length, 1);
    await refusedOption(['dlq', 'list', '--limit', 'lots'], /option '--limit <n>' argument 'lots' is invalid/);
    await refusedOption(['dlq', 'list', '--offset', '-1'], /--offset/);

    const shown = await sriJson('dlq', 'show', a2);
    assert.equal(shown.id, a2);
    assert.equal(shown.orgId, orgA);
    assert.equal(shown.raw, '{not json');
    assert.equal(shown.reason, 'not JSON');
    await rejectsWith('NOT_FOUND', ['dlq', 'show', 'no-such-entry']);

    assert.deepEqual(await sriJson('dlq', 'requeue', a1), { id: a1, orgId: orgA, jobId: requeueable.jobId, requeued: true });
    await rejectsWith('NOT_FOUND', ['dlq', 'requeue', a1], /no dead-letter entry/);
    const back = await queue.take(WORKER);
    assert.equal(back?.jobId, requeueable.jobId, 'the message is back in its queue');
    await queue.release(back!);
    assert.equal((await sriJson('cancel', requeueable.jobId, '--org', orgA)).status, 'cancelled', 'leave nothing queued');

    await rejectsWith('VALIDATION_FAILED', ['dlq', 'purge', '--org', orgA], /--yes/);
    assert.deepEqual(await sriJson('dlq', 'purge', '--org', orgA, '--yes'), { purged: 1, orgId: orgA });
    assert.deepEqual((await sriJson('dlq', 'list', '--json')).entries.map((e: { id: string }) => e.id), [b1], 'B\'s entry stays');
    assert.deepEqual(await sriJson('dlq', 'purge', '--yes'), { purged: 1, orgId: null });
    assert.equal(await sri('dlq', 'list'), 'no dead letters');
  });

  it('cancels a queued job so that it never runs; says JOB_FINAL after and NOT_FOUND for an unknown job', async () => {
    const m = message(orgA);
    await queue.enqueue(orgA, m);
    assert.deepEqual(await sriJson('cancel', m.jobId, '--org', orgA), { jobId: m.jobId, orgId: orgA, status: 'cancelled' });
    assert.equal(await queue.take(WORKER), undefined);
    await rejectsWith('JOB_FINAL', ['cancel', m.jobId, '--org', orgA]);
    await rejectsWith('NOT_FOUND', ['cancel', randomUUID(), '--org', orgA]);
  });

  it('sets and reads quotas; "none" removes a limit; bad values are refused', async () => {
    assert.deepEqual(await sriJson('quota', 'get', orgB), { orgId: orgB, maxConcurrent: null, perMinute: null });
    assert.deepEqual(await sriJson('quota', 'set', orgB, '--max-concurrent', '3', '--per-minute', '60'), { orgId: orgB, maxConcurrent: 3, perMinute: 60 });
    assert.deepEqual(await queue.getQuota(orgB), { maxConcurrent: 3, perMinute: 60 });
    assert.deepEqual(await sriJson('quota', 'set', orgB, '--per-minute', 'none'), { orgId: orgB, maxConcurrent: 3, perMinute: null });
    await refusedOption(['quota', 'set', orgB, '--max-concurrent', 'lots'], /'--max-concurrent <n>' argument 'lots' is invalid\. Give a whole number from 0 to 1000000, or none/);
    await refusedOption(['quota', 'set', orgB, '--per-minute', '2.5'], /--per-minute/);
    await rejectsWith('VALIDATION_FAILED', ['quota', 'set', orgB], /--max-concurrent/);
    assert.deepEqual(await queue.getQuota(orgB), { maxConcurrent: 3, perMinute: null });
  });

  it('through the launcher: prints JSON, and fails with exit 1 and one line "error CODE: message"', async () => {
    const ok = await runSri(['quota', 'get', orgB], env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout), { orgId: orgB, maxConcurrent: 3, perMinute: null });
    const closed = await freePort();
    const down = await runSri(['dlq', 'list'], { REDIS_URL: `redis://:hunter2@127.0.0.1:${closed}` });
    assert.equal(down.code, 1);
    assert.match(down.stderr.trim(), /^error SERVICE_UNAVAILABLE: cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/?; .*REDIS_URL$/);
    assert.doesNotMatch(down.stderr, /hunter2/, 'the password is not printed');
  });
});

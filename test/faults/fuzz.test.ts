/**
 * Fuzz test of issue 3: random and mutated payloads (not JSON, truncated JSON, wrong types, missing
 * fields, strings over 1 MiB, unicode, prototype keys, valid JSON with bad signatures, depth bombs) pushed with a
 * raw LPUSH into three organisations' queues, interleaved with valid hand-signed jobs, served by one worker
 * process. Every valid job ends 'done', every malformed payload ends in the dead-letter list with a reason, every
 * well-formed job with a bad script ends terminal without a retry, the worker never crashes, and the whole run
 * stays within a generous bound.
 *
 * How many: FUZZ_PAYLOADS (default 500, every kind of payload at least once, then random kinds; the issue's soak is
 * FUZZ_PAYLOADS=10000, about twenty times as long — docs/testing.md). FUZZ_SEED replays a run.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { keys } from '../../src/shared/keys.ts';
import { Id, TERMINAL_STATUSES, type JobStatus } from '../../src/shared/schemas.ts';
import { JobQueue, type DlqEntry } from '../../src/shared/queue/job-queue.ts';
import { startTestRedis, startTestS3, tempDir, TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import { startTestPortal, type TestPortal } from '../execution-plane/support/portal.ts';
import { setSession, signedJob, testOrg } from '../execution-plane/support/jobs.ts';
import { PAYLOAD_KINDS, PayloadGenerator, storedText, type Payload, type PayloadContext } from './support/payloads.ts';
import { isAlive, spawnWorker, stopWorker, waitForHeartbeat, type WorkerProcess } from './support/processes.ts';
import { publishDemoProvider } from '../support/providers.ts';

/**
 * 500 by default: each kind comes at least once (the first payloads go through PAYLOAD_KINDS in turn, asserted
 * below), the common ones dozens of times, and each organisation gets valid jobs (one per VALID_EVERY, in turn);
 * the worker's handling does not change with the count, only the run's length does (FUZZ_PAYLOADS for more).
 */
const BAD_PAYLOADS = Number(process.env['FUZZ_PAYLOADS'] ?? 500);
if (!Number.isInteger(BAD_PAYLOADS) || BAD_PAYLOADS < PAYLOAD_KINDS.length) {
  throw new Error(`FUZZ_PAYLOADS must be a whole number of at least ${PAYLOAD_KINDS.length} (one payload of each kind), not ${process.env['FUZZ_PAYLOADS']}`);
}
/** One valid job after every this many bad payloads. */
const VALID_EVERY = 100;
const MAX_JOB_BYTES = 1024 * 1024;
/**
 * The run fails when nothing was taken or finished for STALL_MS (the worker hangs or loops), or after CAP_MS in all;
 * a slow machine is not a failure (no timed assertions: throughput is bench/'s business).
 */
const STALL_MS = 60_000;
const CAP_MS = 600_000;
const SEED = Number(process.env['FUZZ_SEED'] ?? randomInt(2 ** 31));

/** The fuzz payloads' base script: verifies when signed, needs no page, so a well-formed oddity finishes fast. */
const TINY_SCRIPT = `export default async function run({ helpers, context }) {
  helpers.setResult({ jobId: context.jobId });
}
`;
/** The valid jobs: a tiny script against a local page behind the session cookie. */
const VALID_SCRIPT = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/cookies');
  helpers.setResult({ ok: (await page.textContent('body')).startsWith('cookies:') });
}
`;

interface Pushed extends Payload { readonly orgId: string }

/** The job id and organisation a payload claims, read the way any JSON parser would. */
function claim(p: Pushed): { jobId: string; sameOrg: boolean } | undefined {
  try {
    const data = JSON.parse(storedText(p.raw)) as Record<string, unknown> | null;
    if (typeof data !== 'object' || data === null || Array.isArray(data) || !Id.safeParse(data['jobId']).success) return undefined;
    return { jobId: data['jobId'] as string, sameOrg: data['orgId'] === p.orgId };
  } catch {
    return undefined;
  }
}

describe(`fuzz: ${BAD_PAYLOADS.toLocaleString('en')} bad payloads among valid jobs, one worker process`, () => {
  let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
  let s3: Awaited<ReturnType<typeof startTestS3>>;
  let portal: TestPortal;
  let redis: Redis;
  let queue: JobQueue;
  let worker: WorkerProcess | undefined;
  const logs = tempDir('sri-fuzz-');
  const orgs = [testOrg('fz-a'), testOrg('fz-b'), testOrg('fz-c')];

  before(async () => {
    [redisServer, s3, portal] = await Promise.all([startTestRedis(), startTestS3(), startTestPortal()]);
    redis = createRedis(redisServer.url);
    // The catalogue entry the control plane publishes for `demo` (test/support/providers.ts): jobs without
    // allowedHosts reach its hosts; without it they would reach nothing (docs/security.md "Egress").
    await publishDemoProvider(redis);
    queue = await JobQueue.connect(redis, { maxJobBytes: MAX_JOB_BYTES });
    for (const org of orgs) {
      await setSession(redis, org, 'user-1', { cookies: [{ name: 'sid', value: portal.sessionId, url: portal.url }], connectedAt: Date.now() });
    }
  });

  after(async () => {
    if (worker) await stopWorker(worker, 5000);
    redis?.disconnect();
    await Promise.all([redisServer?.stop(), s3?.close(), portal?.close()]);
    logs.remove();
  });

  it('serves every valid job, dead-letters every malformed payload with a reason, and never crashes', { timeout: 900_000 }, async () => {
    console.log(`fuzz seed ${SEED} (replay with FUZZ_SEED=${SEED})`);
    const gen = new PayloadGenerator(SEED);
    worker = spawnWorker({
      REDIS_URL: redisServer.url, S3_ENDPOINT: s3.endpoint, SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET,
      WORKER_MAX_JOBS: '4', WORKER_POLL_INTERVAL: '50', LOG_DIR: logs.path, LOG_LEVEL: 'warn',
      PLAYWRIGHT_TIMEOUT: '10000', EXECUTION_TIMEOUT: '30000',
      // The payloads are signed by hand, script only (README "Testing the worker by hand"); the envelope check has
      // its own tests (test/execution-plane/job-envelope.test.ts).
      REQUIRE_JOB_SIGNATURE: 'false',
    }, `fuzz-worker-${SEED}`);
    const w = worker;
    await waitForHeartbeat(redisServer.url, w);
    const pid = w.child.pid;

    // ── push: bad payloads in pipelined chunks, a valid job after every VALID_EVERY of them ──
    const started = Date.now();
    const pushed: Pushed[] = [];
    const valid: Array<{ jobId: string; orgId: string }> = [];
    for (let i = 0; i < BAD_PAYLOADS; i += VALID_EVERY) {
      const pipe = redis.pipeline();
      for (let j = 0; j < VALID_EVERY && i + j < BAD_PAYLOADS; j++) {
        const orgId = gen.pick(orgs);
        const ctx: PayloadContext = {
          orgId, otherOrgId: orgs.find((o) => o !== orgId)!, secret: TEST_SIGNING_SECRET, script: TINY_SCRIPT, maxJobBytes: MAX_JOB_BYTES,
        };
        const n = i + j;
        const p = n < PAYLOAD_KINDS.length ? gen.next(ctx, PAYLOAD_KINDS[n]) : gen.next(ctx);
        pushed.push({ ...p, orgId });
        pipe.lpush(keys.orgJobs(orgId), p.raw);
      }
      const orgId = orgs[(i / VALID_EVERY) % orgs.length]!;
      const job = signedJob(orgId, VALID_SCRIPT, { metadata: { base: portal.url }, maxConcurrentPerAccount: 4 });
      valid.push({ jobId: job.jobId, orgId });
      pipe.lpush(keys.orgJobs(orgId), JSON.stringify(job));
      const replies = await pipe.exec();
      assert.ok(replies?.every(([err]) => !err), 'every LPUSH accepted');
    }
    const byExpect = (e: Payload['expect']) => pushed.filter((p) => p.expect === e);
    const kinds = new Map<string, number>();
    for (const p of pushed) kinds.set(`${p.kind}→${p.expect}`, (kinds.get(`${p.kind}→${p.expect}`) ?? 0) + 1);
    for (const k of PAYLOAD_KINDS) assert.ok(pushed.some((p) => p.kind === k), `a ${k} payload was pushed`);
    console.log(`pushed ${pushed.length} bad payloads (${[...kinds].sort().map(([k, n]) => `${k} ${n}`).join(', ')}) and ${valid.length} valid jobs in ${Date.now() - started} ms`);

    // ── wait until everything is accounted for, bounded ──
    const wellFormed = pushed.filter((p) => p.expect !== 'dlq');
    const statusOf = async (ids: string[]) => {
      const out: Array<string | null> = [];
      for (let i = 0; i < ids.length; i += 1000) out.push(...await redis.mget(ids.slice(i, i + 1000).map((id) => keys.jobStatus(id))));
      return out;
    };
    const progress = async () => {
      const s = await queue.stats();
      const validStatus = await statusOf(valid.map((v) => v.jobId));
      const formedStatus = await statusOf(wellFormed.map((p) => p.jobId!));
      const dlq = await Promise.all(orgs.map((o) => redis.llen(keys.orgDlq(o))));
      return {
        queued: Object.values(s.queued).reduce((a, b) => a + b, 0) + (await Promise.all(orgs.map((o) => redis.llen(keys.orgJobs(o))))).reduce((a, b) => a + b, 0),
        leased: s.leased, delayed: s.delayed, dlq: dlq.reduce((a, b) => a + b, 0),
        validDone: validStatus.filter((x) => x === 'done').length,
        formedTerminal: formedStatus.filter((x) => TERMINAL_STATUSES.includes(x as JobStatus)).length,
        alive: isAlive(w),
      };
    };
    let last: Awaited<ReturnType<typeof progress>> | undefined;
    let drainedChecks = 0;
    let lastState = '';
    let lastChange = Date.now();
    // The progress counters as a string: any change (taken, dead-lettered, finished) counts as progress.
    let lastPrint = Date.now();
    try {
      // Done when nothing is queued, leased or waiting for a retry at two checks in a row; what became of each
      // payload is asserted below, one by one.
      await waitFor(async () => {
        last = await progress();
        if (Date.now() - lastPrint > 15_000) {
          lastPrint = Date.now();
          console.log(`  ${Math.round((Date.now() - started) / 1000)} s: ${JSON.stringify(last)}`);
        }
        if (!last.alive) return true;
        drainedChecks = last.queued === 0 && last.leased === 0 && last.delayed === 0 ? drainedChecks + 1 : 0;
        const state = JSON.stringify({ ...last, leased: 0 });
        if (state !== lastState) { lastState = state; lastChange = Date.now(); }
        if (Date.now() - lastChange > STALL_MS) return 'stalled';
        return drainedChecks >= 2;
      }, { timeoutMs: CAP_MS, intervalMs: 500, what: 'every payload taken and finished' }).then((r) => {
        if (r === 'stalled') throw new Error(`no payload was taken or finished for ${STALL_MS / 1000} s`);
      });
    } catch (e) {
      throw new Error(`${(e as Error).message}; last progress ${JSON.stringify(last)}; worker output:\n${w.output().slice(-3000)}`);
    }
    const elapsed = Date.now() - started;
    console.log(`all accounted for in ${elapsed} ms: ${JSON.stringify(last)}`);

    // ── the worker never crashed ──
    assert.ok(isAlive(w), `the worker is still running: ${w.output().slice(-3000)}`);
    assert.equal(w.child.pid, pid);
    assert.equal(await redis.exists(keys.workerHeartbeat(w.workerId)), 1, 'its heartbeat is fresh');

    // ── valid jobs: all done ──
    const validStatus = await statusOf(valid.map((v) => v.jobId));
    assert.deepEqual(validStatus.filter((s) => s !== 'done'), [], 'every valid job done');

    // ── malformed payloads: each one a dead letter with a reason, per organisation ──
    const entries = new Map<string, DlqEntry[]>();
    for (const org of orgs) {
      const list: DlqEntry[] = [];
      for (let offset = 0; ; offset += 500) {
        const page = await queue.dlqList(org, offset, 500);
        list.push(...page);
        if (page.length < 500) break;
      }
      entries.set(org, list);
    }
    // Each dead letter is matched to the payload it keeps (by the first 2,000 characters: long ones are cut).
    // Problems by kind: how many, and the first few examples of each.
    const problemKinds = new Map<string, { count: number; examples: string[] }>();
    const note = (what: string, kind = what.replace(/fz-[0-9a-f-]{36}|\d{6,}-\d+/g, '…').slice(0, 100)) => {
      const k = problemKinds.get(kind) ?? { count: 0, examples: [] };
      k.count++;
      if (k.examples.length < 3) k.examples.push(what.slice(0, 300));
      problemKinds.set(kind, k);
    };
    const textOf = (p: Pushed) => storedText(p.raw).slice(0, 2000);
    const unmatched = new Map<string, Pushed[]>();
    for (const p of pushed) {
      const k = `${p.orgId}\u0000${textOf(p)}`;
      unmatched.set(k, [...(unmatched.get(k) ?? []), p]);
    }
    const strayEntries: DlqEntry[] = [];
    for (const org of orgs) {
      for (const e of entries.get(org)!) {
        if (e.orgId !== org) note(`dead letter ${e.id} is listed under ${org} but names ${e.orgId}`);
        if (!(typeof e.reason === 'string' && e.reason.length > 0)) note(`dead letter ${e.id} has no reason`);
        const k = `${org}\u0000${e.raw.slice(0, 2000)}`;
        const candidates = unmatched.get(k);
        const p = candidates?.pop();
        // A signed job with pathological extras (too deep for the queue's decoder, say) may be refused this way.
        if (!p) strayEntries.push(e);
      }
    }
    for (const e of strayEntries.slice(0, 10)) note(`dead letter ${e.id} matches no pushed payload: ${e.reason} / ${e.raw.slice(0, 80)}`);
    const missing = [...unmatched.values()].flat().filter((p) => p.expect === 'dlq');
    const missingByKind = new Map<string, number>();
    for (const p of missing) missingByKind.set(p.kind, (missingByKind.get(p.kind) ?? 0) + 1);
    if (missing.length) {
      note(`${missing.length} malformed payload(s) not in the dead-letter list: ${[...missingByKind].map(([k, n]) => `${k} ${n}`).join(', ')}; ` +
        `e.g. ${missing.slice(0, 3).map((p) => JSON.stringify(textOf(p).slice(0, 120))).join(' ; ')}`);
    }
    const reasons = new Map<string, number>();
    for (const e of [...entries.values()].flat()) {
      const r = e.reason.replace(/[0-9]+/g, 'N').slice(0, 60);
      reasons.set(r, (reasons.get(r) ?? 0) + 1);
    }

    // ── statuses: a malformed message names a job only inside its own organisation ──
    const claims = byExpect('dlq').map((p) => ({ p, c: claim(p) })).filter((x) => x.c !== undefined);
    const claimed = await statusOf(claims.map((x) => x.c!.jobId));
    claims.forEach(({ p, c }, i) => {
      // An oversized message is dead-lettered unread: its status may stay as it was, never 'running'.
      if (p.kind === 'huge') {
        if (!(claimed[i] === null || claimed[i] === 'dead')) note(`oversized payload naming ${c!.jobId}: status ${claimed[i]}`);
      } else if (c!.sameOrg) {
        if (claimed[i] !== 'dead') note(`${p.kind} payload naming ${c!.jobId} in its own queue: status ${claimed[i]}, not dead`);
      } else if (claimed[i] !== null) {
        note(`${p.kind} payload pushed to another organisation's queue set ${c!.jobId}'s status to ${claimed[i]}`);
      }
    });

    // ── well-formed jobs with a bad script: terminal, never retried; signed oddities: terminal ──
    const formedStatus = await statusOf(wellFormed.map((p) => p.jobId!));
    const formedResults = await Promise.all(wellFormed.map((p) => redis.get(keys.jobResult(p.jobId!))));
    wellFormed.forEach((p, i) => {
      const want = p.expect === 'failed' ? ['failed', 'dead'] : TERMINAL_STATUSES;
      if (!want.includes(formedStatus[i] as JobStatus)) {
        note(`${p.kind} job ${p.jobId} (${p.expect}): status ${formedStatus[i]}, stored result ${formedResults[i] === null ? 'none' : 'present'}: ${JSON.stringify(textOf(p).slice(0, 150))}`,
          `${p.kind} job (expected ${p.expect}) ends with status ${formedStatus[i]}`);
      }
      const r = formedResults[i] ? JSON.parse(formedResults[i]!) as { attempt: number; status: string } : undefined;
      if (r && p.expect === 'failed' && r.attempt !== 1) note(`${p.kind} job ${p.jobId}: a script that does not verify ran ${r.attempt} times`);
    });
    const problems = [...problemKinds].map(([kind, { count, examples }]) => `${count}× ${kind}\n      e.g. ${examples.join('\n      e.g. ')}`);
    assert.ok(problems.length === 0, `seed ${SEED}: ${problems.length} kind(s) of problem:\n${problems.join('\n')}`);

    console.log(`all payloads settled in ${elapsed} ms`);
    console.log(`dead letters by reason: ${[...reasons].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([r, n]) => `${n}× ${r}`).join(' | ')}`);
    console.log(`late results: ${(await queue.stats()).lateResults}`);
  });
});

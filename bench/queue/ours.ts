/**
 * Our JobQueue in the benchmark, used the way a worker uses it: `concurrency` take → complete loops in one process
 * sharing one Redis connection (ioredis pipelines the commands that are in flight together), each take a leased,
 * fair (round-robin over organisations) Lua transition, each completion the first-outcome-wins Lua transition
 * that stores and publishes the result, counts the job in the worker's stats and takes the slot's next job.
 */
import { randomUUID } from 'node:crypto';
import { JobQueue } from '../../src/shared/queue/job-queue.ts';
import type { JobMessage, ResultMessage } from '../../src/shared/schemas.ts';
import { ENQUEUE_BATCH, type CaseResult } from './measure.ts';
import type { ConsumeHooks } from './profile.ts';
import { queueClient, type BenchRedis } from './target.ts';

/** The smallest message the contract accepts: an empty script, signed fields filled with placeholders. */
export function emptyJob(orgId: string): JobMessage {
  return {
    jobId: randomUUID(), orgId, userId: 'bench-user', providerId: 'bench', providerName: 'bench', flowId: 'bench-flow',
    flowVersion: '1.0.0', scriptContent: '', scriptHash: '0'.repeat(64), signature: '0'.repeat(64), createdAt: Date.now(),
  };
}

export function emptyResult(jobId: string, orgId: string, workerId: string, attempt: number): ResultMessage {
  return {
    jobId, orgId, userId: 'bench-user', providerId: 'bench', success: true, status: 'done', duration: 0, attempt, workerId,
    finishedAt: new Date().toISOString(), files: { log: '', screenshots: [] },
  };
}

export async function runOurs(b: BenchRedis, jobs: number, concurrency: number, orgCount: number, hooks?: ConsumeHooks): Promise<CaseResult> {
  const redis = queueClient(b, { maxRetriesPerRequest: null, enableAutoPipelining: process.env['BENCH_AUTO_PIPELINE'] === '1' });
  const producer = queueClient(b, { maxRetriesPerRequest: null });
  try {
    const queue = await JobQueue.connect(redis);
    const enqueuer = await JobQueue.connect(producer);
    const orgs = Array.from({ length: orgCount }, (_, i) => `bench-org-${i}`);
    const t0 = performance.now();
    for (let i = 0; i < jobs; i += ENQUEUE_BATCH) {
      const batch: Promise<void>[] = [];
      for (let j = i; j < Math.min(jobs, i + ENQUEUE_BATCH); j++) {
        const orgId = orgs[j % orgCount]!;
        batch.push(enqueuer.enqueue(orgId, emptyJob(orgId)));
      }
      await Promise.all(batch);
    }
    await hooks?.beforeConsume();
    const t1 = performance.now();
    const workerId = `bench-worker-${randomUUID().slice(0, 8)}`;
    let completed = 0;
    let late = 0;
    // Like a worker's slot: one take when idle, then each completion takes the slot's next job in the same
    // round trip (JobQueue.completeAndTake) and counts the job in the worker's stats hash.
    const loop = async () => {
      let t = await queue.take(workerId);
      while (t) {
        const counted = { workerId, durationMs: 0, finishedAt: Date.now() };
        const { outcome, next } = await queue.completeAndTake(t, emptyResult(t.jobId ?? '', t.orgId, workerId, t.attempt), counted, workerId);
        if (outcome === 'recorded') completed++;
        else late++;
        t = next;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, loop));
    const t2 = performance.now();
    await hooks?.afterConsume();
    if (completed !== jobs) throw new Error(`ours: ${completed} of ${jobs} recorded, ${late} late`);
    return { jobs, enqueueMs: t1 - t0, consumeMs: t2 - t1 };
  } finally {
    redis.disconnect();
    producer.disconnect();
  }
}

/**
 * The two baselines of the queue benchmark, on the same redis-server as our queue:
 * - raw: `LPUSH` to enqueue, `RPOP` to take, nothing to complete — the floor any Redis list queue pays;
 * - BullMQ: `Queue.addBulk` to enqueue, a `Worker` with a no-op processor to take and complete.
 * Each case enqueues all jobs first (timed), then consumes them (timed); see ./measure.ts.
 */
import { Queue, Worker, type ConnectionOptions } from 'bullmq';
import { ENQUEUE_BATCH, type CaseResult } from './measure.ts';
import type { ConsumeHooks } from './profile.ts';
import { rawClient, type BenchRedis } from './target.ts';

/** Raw list: producers pipeline LPUSH in batches; `concurrency` RPOP loops share one connection. */
export async function runRaw(b: BenchRedis, jobs: number, concurrency: number, hooks?: ConsumeHooks): Promise<CaseResult> {
  const redis = rawClient(b, { maxRetriesPerRequest: null });
  const key = `bench:raw:${Date.now()}`;
  const payload = JSON.stringify({ empty: true });
  try {
    const t0 = performance.now();
    for (let i = 0; i < jobs; i += ENQUEUE_BATCH) {
      const p = redis.pipeline();
      for (let j = i; j < Math.min(jobs, i + ENQUEUE_BATCH); j++) p.lpush(key, payload);
      await p.exec();
    }
    await hooks?.beforeConsume();
    const t1 = performance.now();
    let taken = 0;
    const loop = async () => {
      while ((await redis.rpop(key)) !== null) taken++;
    };
    await Promise.all(Array.from({ length: concurrency }, loop));
    const t2 = performance.now();
    await hooks?.afterConsume();
    if (taken !== jobs) throw new Error(`raw: took ${taken} of ${jobs}`);
    return { jobs, enqueueMs: t1 - t0, consumeMs: t2 - t1 };
  } finally {
    await redis.del(key);
    redis.disconnect();
  }
}

/**
 * BullMQ as its documentation sets it up: one Queue, one Worker with `concurrency`, a no-op processor, completed
 * jobs removed (as in production; keeping them would grow Redis by one hash per job).
 */
export async function runBullmq(b: BenchRedis, jobs: number, concurrency: number, hooks?: ConsumeHooks): Promise<CaseResult> {
  const url = new URL(b.url);
  // On Cluster BullMQ takes a Cluster instance and a prefix with a hash tag (its guide "Redis Cluster").
  const cluster = b.kind === 'cluster' ? rawClient(b, { maxRetriesPerRequest: null }) : undefined;
  const connection = (cluster ?? { host: url.hostname, port: Number(url.port), maxRetriesPerRequest: null }) as ConnectionOptions;
  const prefix = b.kind === 'cluster' ? '{bench}' : 'bull';
  const name = `bench-${Date.now()}-${concurrency}`;
  const queue = new Queue(name, { connection, prefix });
  let worker: Worker | undefined;
  try {
    await queue.waitUntilReady();
    const t0 = performance.now();
    for (let i = 0; i < jobs; i += ENQUEUE_BATCH) {
      const batch = Array.from({ length: Math.min(ENQUEUE_BATCH, jobs - i) }, () => ({
        name: 'empty', data: { empty: true }, opts: { removeOnComplete: true, removeOnFail: true },
      }));
      await queue.addBulk(batch);
    }
    await hooks?.beforeConsume();
    const t1 = performance.now();
    let completed = 0;
    let failed = 0;
    const allDone = new Promise<void>((resolve, reject) => {
      const w = new Worker(name, async () => {}, { connection, prefix, concurrency, autorun: false });
      worker = w;
      w.on('completed', () => { if (++completed === jobs) resolve(); });
      w.on('failed', () => { failed++; });
      w.on('error', reject);
      void w.run().catch(reject);
    });
    await allDone;
    const t2 = performance.now();
    await hooks?.afterConsume();
    if (failed) throw new Error(`bullmq: ${failed} jobs failed`);
    return { jobs, enqueueMs: t1 - t0, consumeMs: t2 - t1 };
  } finally {
    await worker?.close();
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close();
    cluster?.disconnect();
  }
}

/**
 * `npm run bench:queue -- --long`: one job held far longer than its lease (10 minutes by default) by a worker
 * that renews the lease, while a second worker keeps taking and the lease sweeper keeps recovering expired
 * leases. The job must run exactly once: nobody else takes it, nothing recovers it, its completion is recorded.
 */
import { Redis } from 'ioredis';
import { JobQueue } from '../../src/shared/queue/job-queue.ts';
import { keys } from '../../src/shared/keys.ts';
import { emptyJob, emptyResult } from './ours.ts';

const LEASE_MS = 5000;

export async function runLongLease(redisUrl: string, holdMs: number): Promise<void> {
  const holder = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const rival = new Redis(redisUrl, { maxRetriesPerRequest: null });
  try {
    const q = await JobQueue.connect(holder, { leaseMs: LEASE_MS });
    const other = await JobQueue.connect(rival, { leaseMs: LEASE_MS });
    const orgId = 'bench-long';
    const job = emptyJob(orgId);
    await q.enqueue(orgId, job);
    const taken = await q.take('long-holder');
    if (!taken || taken.jobId !== job.jobId) throw new Error('the long job was not taken');
    console.log(`holding job ${job.jobId} for ${Math.round(holdMs / 1000)} s with a ${LEASE_MS} ms lease, renewed every ${LEASE_MS / 3} ms`);

    const started = Date.now();
    let renewals = 0;
    let rivalTakes = 0;
    let recovered = 0;
    let lastPrint = started;
    while (Date.now() - started < holdMs) {
      await new Promise((r) => setTimeout(r, LEASE_MS / 3));
      await q.renew('long-holder', [taken.token]);
      renewals++;
      // The rival: a second worker polling, and the sweeper that hands back expired leases.
      recovered += await other.recoverExpired();
      const t = await other.take('long-rival');
      if (t) {
        rivalTakes++;
        console.error(`the rival took ${t.jobId} (attempt ${t.attempt}) — the long job ran twice`);
        await other.release(t);
      }
      if (Date.now() - lastPrint > 60_000) {
        lastPrint = Date.now();
        console.log(`  ${Math.round((Date.now() - started) / 1000)} s: ${renewals} renewals, status ${await holder.get(keys.jobStatus(job.jobId))}`);
      }
    }
    const outcome = await q.complete(taken, emptyResult(job.jobId, orgId, 'long-holder', taken.attempt));
    const status = await holder.get(keys.jobStatus(job.jobId));
    const stats = await q.stats();
    const ok = outcome === 'recorded' && status === 'done' && rivalTakes === 0 && recovered === 0 && taken.attempt === 1 && stats.lateResults === 0;
    console.log(`long job: held ${Math.round((Date.now() - started) / 1000)} s, ${renewals} renewals, completion ${outcome}, status ${status}, ` +
      `rival takes ${rivalTakes}, leases recovered ${recovered}, attempt ${taken.attempt}, late results ${stats.lateResults} → ${ok ? 'ran once' : 'FAILED'}`);
    if (!ok) throw new Error('the long job did not run exactly once');
  } finally {
    holder.disconnect();
    rival.disconnect();
  }
}

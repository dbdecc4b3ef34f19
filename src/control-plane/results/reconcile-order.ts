/**
 * The order in which the reconciler visits unfinished jobs (docs/security.md "One tenant cannot exhaust shared
 * resources"). It reads at most a batch per pass; taking the oldest jobs of all organisations let one organisation
 * with a batch's worth of parked jobs (queued behind a paused quota, or never taken) fill every pass, so no other
 * organisation's lost result was ever recovered. Instead each pass takes organisations round-robin
 * (listUnfinishedJobs), and this keeps, per organisation, where its last pass stopped, so the next one goes on from
 * there: an organisation with J unfinished jobs among O organisations has all of them visited within about
 * J·O / batch passes, and one with a single job has it visited on every pass (while there are fewer organisations
 * with unfinished jobs than the batch; beyond that they take turns, rotated by id).
 */
import type { UnfinishedCursor, UnfinishedJob } from '../db/queries/jobs.ts';

/** Organisations whose position is remembered; beyond it the longest-unvisited start again from their oldest job. */
const MAX_REMEMBERED_ORGS = 10_000;

export class ReconcileOrder {
  private readonly cursors = new Map<string, UnfinishedCursor>();
  private orgAfter = '';

  constructor(readonly batch: number) {}

  /** The arguments of the next listUnfinishedJobs after `limit`. */
  next(): { cursors: UnfinishedCursor[]; orgAfter: string } {
    return { cursors: [...this.cursors.values()], orgAfter: this.orgAfter };
  }

  /** Records what one pass visited (the rows listUnfinishedJobs returned, in its order). */
  advance(rows: readonly UnfinishedJob[]): void {
    for (const r of rows) {
      // Re-inserted so the Map's order is "least recently visited first" for the bound below.
      this.cursors.delete(r.org_id);
      this.cursors.set(r.org_id, { orgId: r.org_id, at: r.at, id: r.id });
    }
    while (this.cursors.size > MAX_REMEMBERED_ORGS) this.cursors.delete(this.cursors.keys().next().value!);
    // More organisations than the batch (every row was some organisation's first): the next pass starts after the
    // last one served.
    const full = rows.length >= this.batch && rows.every((r) => r.rn === 1);
    this.orgAfter = full ? rows.at(-1)!.org_id : '';
  }
}

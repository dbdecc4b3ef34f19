/**
 * Fair polling across organisations: each turn visits every organisation once, in a stable (sorted) order, and
 * takes at most one job from each; the next take starts after the organisation served last. One busy
 * organisation therefore cannot starve the others however long its queue is.
 */
export class RoundRobin {
  private items: string[] = [];
  private lastServed: string | undefined;

  /** Replaces the set of organisations; the position (after the last served one) survives the change. */
  setItems(items: Iterable<string>): void {
    this.items = [...new Set(items)].sort();
  }

  get size(): number {
    return this.items.length;
  }

  /** Every organisation once, starting right after the last served one. */
  rotation(): string[] {
    if (this.lastServed === undefined) return [...this.items];
    const last = this.lastServed;
    const start = this.items.findIndex((o) => o > last);
    if (start <= 0) return [...this.items];
    return [...this.items.slice(start), ...this.items.slice(0, start)];
  }

  markServed(item: string): void {
    this.lastServed = item;
  }
}

/**
 * Tries the organisations in rotation order and returns the first job taken (one take per organisation);
 * undefined when every queue was empty.
 */
export async function takeNextFair<T>(rr: RoundRobin, take: (orgId: string) => Promise<T | undefined>): Promise<{ orgId: string; job: T } | undefined> {
  for (const orgId of rr.rotation()) {
    const job = await take(orgId);
    if (job !== undefined) {
      rr.markServed(orgId);
      return { orgId, job };
    }
  }
  return undefined;
}

/**
 * What a job's browser was refused, and what it moved, as execution.log lines and the result's `egress` field.
 * Both the route guard (host-guard.ts) and the egress proxy report here: a request the guard aborts never reaches
 * the proxy, so nothing is counted twice. Bounded, whatever a script does: a script that asks for a million random
 * host names leaves at most MAX_BLOCKED_TRACKED entries here and MAX_BLOCKED_LISTED in the result.
 */
import { SriError } from '../../shared/errors.ts';
import type { ResultEgress } from '../../shared/schemas.ts';
import type { EgressBlockReason } from './egress-policy.ts';
import type { ProxyLease } from './egress-proxy.ts';

export type { ResultEgress };

/** Entries named in the result and in execution.log; the rest are counted in `blockedTotal`. */
export const MAX_BLOCKED_LISTED = 50;
/** Distinct (host, reason) pairs kept while the job runs; further hosts are counted under OTHER_HOSTS. */
export const MAX_BLOCKED_TRACKED = 1000;
export const OTHER_HOSTS = '(other hosts)';

interface Entry { host: string; reason: EgressBlockReason; count: number }

export class EgressTally {
  private readonly entries = new Map<string, Entry>();
  private total = 0;

  /** The `onBlocked` of the route guard and of the proxy lease. */
  readonly onBlocked = (host: string, reason: EgressBlockReason = 'not-allowed'): void => {
    this.total++;
    let key = `${reason} ${host}`;
    if (!this.entries.has(key) && this.entries.size >= MAX_BLOCKED_TRACKED) key = `${reason} ${OTHER_HOSTS}`;
    const entry = this.entries.get(key) ?? { host: key === `${reason} ${host}` ? host : OTHER_HOSTS, reason, count: 0 };
    entry.count++;
    this.entries.set(key, entry);
  };

  /** Refusals so far, of every host and reason. */
  get blockedTotal(): number {
    return this.total;
  }

  /** Writes what was refused and any limit to `warn` (execution.log), and gives the result's `egress` field. */
  finish(lease: ProxyLease, warn: (line: string) => void): ResultEgress {
    const all = [...this.entries.values()];
    const list = (entries: Entry[], arrow: boolean) => {
      const shown = entries.slice(0, MAX_BLOCKED_LISTED)
        .map((e) => (arrow ? `${e.host} → ${e.reason} (${e.count})` : `${e.host} (${e.count})`)).join(', ');
      return entries.length > MAX_BLOCKED_LISTED ? `${shown}, and ${entries.length - MAX_BLOCKED_LISTED} more` : shown;
    };
    const byHost = all.filter((e) => e.reason === 'not-allowed' || e.reason === 'scheme');
    const byAddress = all.filter((e) => e.reason !== 'not-allowed' && e.reason !== 'scheme');
    const sum = (entries: Entry[]) => entries.reduce((n, e) => n + e.count, 0);
    // The first line keeps the wording it has always had: operators and tests match on it.
    if (byHost.length) warn(`blocked ${sum(byHost)} request(s) to hosts outside allowedHosts: ${list(byHost, false)}`);
    if (byAddress.length) warn(`blocked ${sum(byAddress)} connection(s) to addresses the job may not reach: ${list(byAddress, true)}`);
    if (lease.connectionsRefused()) warn(`refused ${lease.connectionsRefused()} connection(s) over the job's limit of connections open at once`);
    const limit = lease.limitExceeded();
    if (limit === 'egress-bytes') warn(`egress budget spent: the browser moved ${lease.bytes()} bytes, over WORKER_EGRESS_MAX_BYTES; every connection was cut`);
    return {
      blocked: [...all].sort((a, b) => b.count - a.count).slice(0, MAX_BLOCKED_LISTED).map(({ host, reason, count }) => ({ host, reason, count })),
      blockedTotal: this.total,
      bytes: lease.bytes(),
      ...(limit ? { limitExceeded: limit } : {}),
    };
  }
}

/**
 * The job's error when its lease went over the byte budget: not retryable (the same flow would download the same
 * bytes again), and it replaces whatever the script made of its cut connections (a net::ERR_… would be retried).
 */
export function egressLimitError(maxBytes: number, cause?: unknown): SriError {
  return new SriError('SCRIPT_RESOURCE_LIMIT',
    `Egress budget spent (egress-bytes): the job's browser moved more than WORKER_EGRESS_MAX_BYTES (${maxBytes} bytes), so its connections were cut; files the page makes itself (blob: and data: downloads) count against the same budget. Download less per job, or raise WORKER_EGRESS_MAX_BYTES.`,
    { cause });
}

/**
 * Prometheus metrics common to both planes (prom-client). Each process builds one registry — never prom-client's
 * global one, so tests and an API and workers in one process never mix their series — with the Node.js process
 * metrics (`process_*`, `nodejs_*`: CPU, memory, event-loop lag, GC) and the labels given.
 * docs/observability.md lists every metric.
 *
 * What every registry exposes passes `promtool check metrics` (test/deploy/promtool.test.ts scrapes the API and a
 * worker): prom-client's `nodejs_active_{handles,requests,resources}_total` are gauges whose names say counter, so
 * they are left out — `sum without (type) (nodejs_active_handles)` is the same number.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';

export { Registry };

/** The text format Prometheus scrapes (`text/plain; version=0.0.4`). */
export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/** prom-client's default gauges named like counters (`_total` is for counters only, in Prometheus' conventions). */
const MISNAMED_DEFAULT_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export function createMetricsRegistry(defaultLabels: Record<string, string> = {}): Registry {
  const registry = new Registry();
  if (Object.keys(defaultLabels).length) registry.setDefaultLabels(defaultLabels);
  collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED_DEFAULT_GAUGES) {
    if (registry.getSingleMetric(name)) registry.removeSingleMetric(name);
  }
  return registry;
}

/**
 * Keeps a label's values bounded: the first `max` distinct values pass, later new ones become `other`. Labels fed
 * from data (flow ids, organisation ids) would otherwise grow a series per value for as long as the process lives.
 */
export class BoundedLabel {
  private readonly seen = new Set<string>();

  constructor(private readonly max: number, private readonly overflow = 'other') {}

  value(v: string | undefined, missing = 'unknown'): string {
    const x = v === undefined || v === '' ? missing : v;
    if (this.seen.has(x)) return x;
    if (this.seen.size >= this.max) return this.overflow;
    this.seen.add(x);
    return x;
  }
}

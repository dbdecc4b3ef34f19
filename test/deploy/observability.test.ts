/**
 * deploy/observability/: the Prometheus alert rules, the example Prometheus configuration and the Grafana
 * dashboard parse, have the shape their tools load, and use only metrics (and labels) the code exports — the
 * worker's registry and the API's, built here as the processes build them.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { MetricObject } from 'prom-client';
import { WorkerMetrics } from '../../src/execution-plane/observability/metrics.ts';
import { ApiMetrics } from '../../src/control-plane/http/metrics.ts';
import { createRedis } from '../../src/shared/redis.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { LiveConfigWatcher } from '../../src/execution-plane/live-config.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIR = join(ROOT, 'deploy', 'observability');
type Obj = Record<string, any>;

// A client that never connects: building the registries reads nothing (gauges read only when scraped).
const idle = createRedis('redis://127.0.0.1:1', { lazyConnect: true });
after(() => idle.disconnect());

/** Every series name the code exports (histograms as _bucket, _sum, _count), with the labels it may carry. */
function exported(): Map<string, Set<string>> {
  const worker = new WorkerMetrics({
    workerId: 'w', redis: idle, queueMaxOrgs: 10,
    sources: {
      state: () => 'ready', jobsInFlight: () => 0, maxJobs: () => 1, redisState: () => 'connected', redisOutageMs: () => 0,
      redisReconnects: () => 0, lastHeartbeatAt: () => undefined, browserUp: () => true, resources: () => undefined,
      eventLoop: () => ({ maxDelayMs: 0, sinceLastTickMs: 0, windowMs: 10_000, limitMs: 5000, stuck: false, blocks: 0 }),
    },
  });
  // The live configuration's metrics go on the worker's registry when the worker makes its watcher (worker.ts).
  new LiveConfigWatcher({
    redis: idle, subscriber: idle, logger: createLogger({ name: 'observability-test', level: 'silent' }),
    defaults: { maxJobs: 1, maxAttempts: 3, backoffBaseMs: 1000, backoffMaxMs: 60_000 }, registry: worker.registry,
  });
  const api = new ApiMetrics({ redis: idle, queueMaxOrgs: 10 });
  const out = new Map<string, Set<string>>();
  // Labels every series gets from Prometheus (target labels) or from the worker's registry.
  const common = ['job', 'instance', 'worker_id'];
  for (const m of [...worker.registry.getMetricsAsArray(), ...api.registry.getMetricsAsArray()] as (MetricObject & { labelNames?: string[] })[]) {
    const labels = new Set([...common, ...(m.labelNames ?? [])]);
    if (String(m.type) === 'histogram') {
      out.set(`${m.name}_bucket`, new Set([...labels, 'le']));
      out.set(`${m.name}_sum`, labels);
      out.set(`${m.name}_count`, labels);
    } else {
      out.set(m.name, labels);
    }
  }
  return out;
}

/** Prometheus' own series (not exported by the code) that the rules may use. */
const PROMETHEUS_SERIES = new Map([['up', new Set(['job', 'instance'])]]);
const PROMQL_WORDS = new Set([
  'sum', 'max', 'min', 'avg', 'count', 'topk', 'bottomk', 'by', 'without', 'and', 'or', 'unless', 'on', 'ignoring', 'group_left',
  'group_right', 'rate', 'irate', 'increase', 'delta', 'histogram_quantile', 'clamp_min', 'clamp_max', 'max_over_time',
  'min_over_time', 'avg_over_time', 'absent', 'bool', 'offset', 'le',
]);

/** The series an expression selects, with the label names of its selectors (`name{a="x"}`), and its grouping labels. */
function selectors(expr: string): { name: string; labels: string[] }[] {
  const stripped = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\[[^\]]*\]/g, '');
  const out: { name: string; labels: string[] }[] = [];
  for (const m of stripped.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?/g)) {
    const name = m[1]!;
    if (PROMQL_WORDS.has(name) || /^\$/.test(name) || /^\d/.test(name)) continue;
    // Words inside by (…) / without (…) are labels, not series.
    const before = stripped.slice(0, m.index);
    if (/\b(by|without|on|ignoring)\s*\([^)]*$/.test(before)) continue;
    if (before.endsWith('{') || /\{[^}]*$/.test(before)) continue;
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)].map((l) => l[1]!);
    out.push({ name, labels });
  }
  return out;
}

/** Labels named in by (…) clauses. */
function groupingLabels(expr: string): string[] {
  return [...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()).filter(Boolean));
}

function checkExpr(expr: string, where: string, metrics: Map<string, Set<string>>): void {
  let depth = 0;
  for (const ch of expr.replace(/"(?:[^"\\]|\\.)*"/g, '')) {
    if ('({['.includes(ch)) depth++;
    if (')}]'.includes(ch)) depth--;
    assert.ok(depth >= 0, `${where}: unbalanced brackets in ${expr}`);
  }
  assert.equal(depth, 0, `${where}: unbalanced brackets in ${expr}`);
  const used = selectors(expr);
  assert.ok(used.some((u) => u.name.startsWith('sri_') || u.name.startsWith('nodejs_') || u.name.startsWith('process_') || u.name === 'up'), `${where}: selects no metric`);
  const allLabels = new Set<string>();
  for (const u of used) {
    const labels = metrics.get(u.name) ?? PROMETHEUS_SERIES.get(u.name);
    assert.ok(labels, `${where}: ${u.name} is not a metric the code exports (${expr})`);
    for (const l of u.labels) assert.ok(labels.has(l), `${where}: ${u.name} has no label ${l}`);
    for (const l of labels) allLabels.add(l);
  }
  for (const l of groupingLabels(expr)) assert.ok(allLabels.has(l), `${where}: groups by ${l}, which none of its series has`);
}

describe('deploy/observability', () => {
  const metrics = exported();

  it('knows the metrics docs/observability.md lists, and the docs list every sri_ metric', () => {
    const doc = readFileSync(join(ROOT, 'docs', 'observability.md'), 'utf8');
    const documented = new Set([...doc.matchAll(/`(sri_[a-z0-9_]+)`/g)].map((m) => m[1]!));
    const ours = [...metrics.keys()].filter((n) => n.startsWith('sri_')).map((n) => n.replace(/_(bucket|sum|count)$/, ''));
    for (const n of new Set(ours)) assert.ok(documented.has(n), `docs/observability.md lists ${n}`);
    for (const n of documented) assert.ok(metrics.has(n) || metrics.has(`${n}_bucket`), `docs/observability.md lists ${n}, which the code does not export`);
  });

  it('alerts.yml: Prometheus rule groups whose alerts use only exported metrics and labels', () => {
    const doc = parse(readFileSync(join(DIR, 'alerts.yml'), 'utf8')) as Obj;
    assert.ok(Array.isArray(doc['groups']) && doc['groups'].length > 0);
    const names = new Set<string>();
    for (const g of doc['groups'] as Obj[]) {
      assert.equal(typeof g['name'], 'string');
      for (const r of g['rules'] as Obj[]) {
        assert.match(r['alert'], /^Sri[A-Za-z]+$/);
        assert.ok(!names.has(r['alert']), `alert ${r['alert']} twice`);
        names.add(r['alert']);
        assert.equal(typeof r['expr'], 'string');
        if (r['for'] !== undefined) assert.match(r['for'], /^\d+[smh]$/, `${r['alert']} for`);
        assert.ok(['info', 'warning', 'critical'].includes(r['labels']?.['severity']), `${r['alert']} severity`);
        assert.ok(r['annotations']?.['summary'] && r['annotations']?.['description'], `${r['alert']} annotations`);
        assert.deepEqual(Object.keys(r).filter((k) => !['alert', 'expr', 'for', 'labels', 'annotations'].includes(k)), [], `${r['alert']}: unknown keys`);
        checkExpr(r['expr'], `alert ${r['alert']}`, metrics);
      }
    }
    // The four the issue asks for.
    for (const a of ['SriQueueLag', 'SriJobFailureRate', 'SriWorkerHeartbeatMissing', 'SriBrowserRestartLoop']) assert.ok(names.has(a), a);
  });

  it('prometheus.yml: loads the rules and scrapes the jobs the rules and the dashboard name', () => {
    const doc = parse(readFileSync(join(DIR, 'prometheus.yml'), 'utf8')) as Obj;
    for (const f of doc['rule_files'] as string[]) assert.ok(existsSync(join(DIR, f)), `rule file ${f}`);
    const jobs = (doc['scrape_configs'] as Obj[]).map((s) => s['job_name']);
    assert.deepEqual(jobs.sort(), ['sri-api', 'sri-worker']);
    const used = [readFileSync(join(DIR, 'alerts.yml'), 'utf8'), readFileSync(join(DIR, 'grafana-dashboard.json'), 'utf8')].join('\n');
    for (const m of used.matchAll(/job=\\?"([^"\\]+)\\?"/g)) assert.ok(jobs.includes(m[1]), `job ${m[1]} is scraped`);
  });

  it('grafana-dashboard.json: a dashboard whose panels query only exported metrics and labels', () => {
    const d = JSON.parse(readFileSync(join(DIR, 'grafana-dashboard.json'), 'utf8')) as Obj;
    assert.equal(typeof d['title'], 'string');
    assert.match(d['uid'], /^[a-z0-9-]{1,40}$/);
    assert.ok(Number.isInteger(d['schemaVersion']));
    const dsVar = (d['templating']['list'] as Obj[]).find((v) => v['type'] === 'datasource' && v['query'] === 'prometheus');
    assert.ok(dsVar, 'a Prometheus data source variable');
    const ids = new Set<number>();
    let queries = 0;
    for (const p of d['panels'] as Obj[]) {
      assert.ok(Number.isInteger(p['id']) && !ids.has(p['id']), `panel id ${p['id']} unique`);
      ids.add(p['id']);
      const g = p['gridPos'];
      assert.ok(g && g.w > 0 && g.w <= 24 && g.h > 0 && g.x >= 0 && g.x + g.w <= 24 && g.y >= 0, `panel ${p['title']} gridPos`);
      if (p['type'] === 'row') continue;
      assert.equal(p['datasource']?.['uid'], `\${${dsVar['name']}}`, `panel ${p['title']} uses the data source variable`);
      assert.ok(Array.isArray(p['targets']) && p['targets'].length > 0, `panel ${p['title']} has queries`);
      const refIds = new Set<string>();
      for (const t of p['targets'] as Obj[]) {
        assert.ok(!refIds.has(t['refId']), `panel ${p['title']} refId ${t['refId']} unique`);
        refIds.add(t['refId']);
        checkExpr(t['expr'], `panel ${p['title']}`, metrics);
        queries++;
      }
    }
    assert.ok(queries >= 20);
  });

  it('its checker notices a metric or a label the code does not export', () => {
    assert.throws(() => checkExpr('rate(sri_jobs_finished_total[5m])', 'probe', metrics), /not a metric the code exports/);
    assert.throws(() => checkExpr('sri_job_results_total{status="done"}', 'probe', metrics), /has no label status/);
    assert.throws(() => checkExpr('sum by (org) (sri_job_results_total)', 'probe', metrics), /groups by org/);
    assert.throws(() => checkExpr('sum(rate(sri_job_results_total[5m])', 'probe', metrics), /unbalanced/);
    checkExpr('sum by (org) (sri_queue_length{org="a"})', 'probe', metrics);
  });
});

#!/usr/bin/env node
// Container health check (Docker HEALTHCHECK, Compose healthcheck). Plain JavaScript, no tsx: it runs every 30 s and
// must start fast. Kubernetes does not need it: its probes ask the same endpoints with httpGet.
//   node deploy/docker/healthcheck.mjs api           → GET http://127.0.0.1:$PORT/health answers 2xx
//   node deploy/docker/healthcheck.mjs worker        → GET /healthz of the worker's HTTP server answers 2xx (liveness:
//                                                     the process runs, its event loop is not stuck)
//   node deploy/docker/healthcheck.mjs worker-ready  → GET /readyz answers 2xx (readiness: Redis answers, Chromium
//                                                     is up, the worker takes jobs)
// The worker's server is WORKER_HTTP_HOST:WORKER_HTTP_PORT (9464); a wildcard host is asked on 127.0.0.1. The probes
// need no Redis credentials, so they work whatever Redis user the worker runs as (an enrolled worker's own user, or
// the bootstrap user it starts with). Exit 0 healthy, 1 not.
const mode = process.argv[2] ?? 'worker';
const fail = (why) => { process.stderr.write(`unhealthy: ${why}\n`); process.exit(1); };
setTimeout(() => fail('timed out'), 8000).unref();

async function probe(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) }).catch((e) => fail(`${url}: ${e.message}`));
  if (!res.ok) fail(`${url} answered ${res.status}: ${(await res.text().catch(() => '')).slice(0, 300)}`);
}

if (mode === 'api') {
  await probe(`http://127.0.0.1:${process.env.PORT || 3000}/health`);
} else if (mode === 'worker' || mode === 'worker-ready') {
  const port = process.env.WORKER_HTTP_PORT || '9464';
  if (port === 'off' || port === '0') fail(`WORKER_HTTP_PORT=${port}: the worker has no fixed probe port; set one`);
  const host = process.env.WORKER_HTTP_HOST || '127.0.0.1';
  const target = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  await probe(`http://${target}:${port}/${mode === 'worker' ? 'healthz' : 'readyz'}`);
} else {
  fail(`unknown mode ${mode}: api, worker or worker-ready`);
}
process.exit(0);

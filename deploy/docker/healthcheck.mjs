#!/usr/bin/env node
// Container health check (Docker HEALTHCHECK, Kubernetes exec probe). Plain JavaScript, no tsx: it runs every
// 30 s and must start fast.
//   node deploy/docker/healthcheck.mjs api     → GET http://127.0.0.1:$PORT/health answers 2xx
//   node deploy/docker/healthcheck.mjs worker  → the worker's heartbeat key in Redis is younger than 30 s
// The worker's id is WORKER_ID, else the worker's own default `worker-<hostname>-<pid>` (pid found in /proc).
// TLS to Redis uses the same REDIS_TLS_* files as the worker. Exit 0 healthy, 1 not.
import { readFileSync, readdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { Redis } from 'ioredis';

const HEARTBEAT_MAX_AGE_MS = 30_000;
const mode = process.argv[2] ?? 'worker';
const fail = (why) => { process.stderr.write(`unhealthy: ${why}\n`); process.exit(1); };
setTimeout(() => fail('timed out'), 8000).unref();

if (mode === 'api') {
  const res = await fetch(`http://127.0.0.1:${process.env.PORT || 3000}/health`).catch((e) => fail(e.message));
  if (!res.ok) fail(`/health answered ${res.status}`);
  process.exit(0);
}

function workerId() {
  if (process.env.WORKER_ID) return process.env.WORKER_ID;
  const pid = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).find((d) => {
    try { return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('src/execution-plane/main.ts'); } catch { return false; }
  });
  if (!pid) fail('no worker process');
  return `worker-${hostname().replace(/[^A-Za-z0-9_.-]/g, '-')}-${pid}`;
}

const id = workerId();
const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const file = (name) => (process.env[name] ? readFileSync(process.env[name]) : undefined);
const tls = url.startsWith('rediss://')
  ? Object.fromEntries(Object.entries({ ca: file('REDIS_TLS_CA'), cert: file('REDIS_TLS_CERT'), key: file('REDIS_TLS_KEY') }).filter(([, v]) => v))
  : undefined;
const redis = new Redis(url, { tls, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectionName: 'sri-healthcheck' });
redis.on('error', () => {});
try {
  await redis.connect();
  const beat = Number(await redis.get(`sri:worker:${id}:heartbeat`));
  if (!beat) fail(`no heartbeat for ${id}`);
  if (Date.now() - beat > HEARTBEAT_MAX_AGE_MS) fail(`heartbeat of ${id} is ${Date.now() - beat} ms old`);
} catch (e) {
  fail(e.message);
} finally {
  redis.disconnect();
}
process.exit(0);

#!/usr/bin/env node
// Runs every test file under test/ with node's test runner, in four passes: the pure unit files (UNIT_FILES: no
// Chromium, no server, no child process, no port, no timing) two at a time, the light integration files
// (LIGHT_FILES: Redis, PGlite or HTTP only) two at a time, the heavy files that mostly wait on conditions
// (PAIRED_FILES: Chromium, a worker, an API) two at a time, then every other file one at a time (tight time bounds,
// global state, or the machine's whole load). Extra arguments filter files by substring:
// `npm test -- worker`. At the end it prints each file's wall time, slowest first, and the totals (docs/testing.md).
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.test.ts') ? [p] : [];
  });
}
// The platform runs on Node 24 (package.json "engines"); npm puts the project's own (node_modules/.bin/node, the npm
// package `node`) first on the PATH of its scripts, so `npm test` runs on it even where the system's node is older.
// Run any other way on an older node, the tests would test a runtime production does not use.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`error: the tests run on Node 24, this is Node ${process.versions.node} (${process.execPath}); run them with \`npm test\` after \`npm install\`\n`);
  process.exit(1);
}
process.stdout.write(`node ${process.version} (${process.execPath})\n`);

/**
 * Files that only call functions and read files of the repository: they start no Chromium, server, Redis, PGlite or
 * child process, open no port and time nothing, so two of them (one per core) cannot slow each other into a failure.
 * Run three times two at a time before they were listed here (docs/testing.md). A file not listed runs alone; list a
 * new file here only if it is like these.
 */
const UNIT_FILES = new Set([
  'test/cli/progress.test.ts',
  'test/deploy/observability.test.ts',
  'test/docs/configuration.test.ts',
  'test/docs/errors.test.ts',
  'test/docs/readme.test.ts',
  'test/docs/redis-keys.test.ts',
  'test/execution-plane/job-clock.test.ts',
  'test/execution-plane/parse-evidence.test.ts',
  'test/execution-plane/redactor.test.ts',
  'test/shared/host-match.test.ts',
  'test/shared/modules.test.ts',
  'test/shared/redis-cluster-config.test.ts',
  'test/shared/sealed.test.ts',
  'test/shared/sse.test.ts',
  'test/shared/totp.test.ts',
  'test/sri/parse.test.ts',
]);

/**
 * Light integration files: real redis-server, PGlite or an HTTP server in the file's own process, no Chromium, no
 * worker, no child process but redis-server, and no assertion on how long something takes. Two of them at a time
 * do not starve each other into a failure; each was run two at a time with the others here before it was listed
 * (docs/testing.md). Every other file runs alone.
 */
const LIGHT_FILES = new Set([
  'test/cli/dlq.test.ts',
  'test/cli/enrol.test.ts',
  'test/cli/logs.test.ts',
  'test/cli/secrets.test.ts',
  'test/control-plane/account-concurrency.test.ts',
  'test/control-plane/api.test.ts',
  'test/control-plane/documents.test.ts',
  'test/control-plane/hardening.test.ts',
  'test/control-plane/job-blocked.test.ts',
  'test/control-plane/jobs-list.test.ts',
  'test/control-plane/members-api.test.ts',
  'test/control-plane/provider-catalogue.test.ts',
  'test/control-plane/provider-health.test.ts',
  'test/control-plane/recording-api.test.ts',
  'test/control-plane/reliability-api.test.ts',
  'test/control-plane/result-artifacts.test.ts',
  'test/control-plane/secrets.test.ts',
  'test/control-plane/tenant-isolation.test.ts',
  'test/control-plane/webhooks.test.ts',
  'test/execution-plane/queue.test.ts',
  'test/execution-plane/session-store.test.ts',
  'test/shared/queue-accounts.test.ts',
  'test/shared/worker-registry.test.ts',
]);

/**
 * Heavy files run two at a time (pass 3): they start their own services — an API on PGlite, redis-server, the S3
 * server, a portal, a worker with Chromium — on free ports and in their own temporary folders, and then mostly wait
 * on conditions, so two of them share the 2 cores without failing. A file qualifies when it asserts no tight time
 * bound (bounds of several times what the behaviour takes are fine), kills or reads no process but its own (by PID,
 * never by name or by scanning every process), uses no fixed port or shared path, and does not load the machine on
 * purpose (fault, fuzz, build, podman). Each was run two at a time with the others here before it was listed
 * (docs/testing.md). A file in none of the lists runs alone, in the last pass; the ones kept alone and why:
 *   test/cli/cli.test.ts: its `sri up` case timed out after 60 s at load 20 even alone
 *   test/control-plane/job-logs.test.ts: asserts the API closed a follower in under 3 s, and a 2.5 s wait on a socket's state
 *   test/control-plane/schedules-replicas.test.ts: a schedule due every 2 s on two API processes ticking every 100 ms: exactly one job per due time
 *   test/deploy/dist.test.ts: `npm run build` (Vite, esbuild) and a production npm tree: a build, both cores
 *   test/execution-plane/adversarial.test.ts: hostile scripts that spend CPU and memory on purpose, and a 60 s bound
 *   test/execution-plane/enrolment.test.ts: 5 s bounds on a worker's reconnection
 *   test/execution-plane/observability-units.test.ts: asserts a call returned in under 5 ms
 *   test/execution-plane/provider-pacing.test.ts: pacing and requests-per-minute against the wall clock's minute
 *   test/execution-plane/redis-outage.test.ts: asserts the worker gives up within 15 s of its outage limit
 *   test/faults/fault.test.ts: five workers with Chromium, kills and a redis-server kill: the machine's whole load
 *   test/faults/fuzz.test.ts: hundreds of payloads as fast as the worker takes them: the machine's whole load
 *   test/faults/lost-reply.test.ts: kills redis-server right after a write: the fault family, timed against the server
 *   test/ops-worker/podman-login-health.test.ts: podman and a registry; scans every process's /proc for the token (another file's processes would be read)
 *   test/ops-worker/podman.test.ts: podman, a registry and docker-compose: heavy, and containers named by the test
 *   test/shared/queue-depth.test.ts: asserts a scrape returned in under 1.2 s while Redis stalls
 *   test/web/system-page.test.ts: the podman test's stack (podman, a registry, docker-compose) behind Chromium
 */
const PAIRED_FILES = new Set([
  'test/cli/api-client.test.ts',
  'test/cli/demo.test.ts',
  'test/cli/parse.test.ts',
  'test/contract/openapi.test.ts',
  'test/contract/walkthrough.test.ts',
  'test/control-plane/argon2.test.ts',
  'test/control-plane/compile-steps.test.ts',
  'test/control-plane/compile.test.ts',
  'test/control-plane/login-lockout.test.ts',
  'test/control-plane/process.test.ts',
  'test/control-plane/schedules-cron.test.ts',
  'test/control-plane/schedules.test.ts',
  'test/control-plane/slow-backends.test.ts',
  'test/control-plane/tenant-limits.test.ts',
  'test/control-plane/webhook-targets.test.ts',
  'test/control-plane/workers-api.test.ts',
  'test/deploy/deploy.test.ts',
  'test/deploy/enrolment.test.ts',
  'test/deploy/least-privilege.test.ts',
  'test/deploy/promtool.test.ts',
  'test/e2e/cluster.test.ts',
  'test/e2e/handoff.test.ts',
  'test/e2e/modules.test.ts',
  'test/e2e/secrets.test.ts',
  'test/e2e/session-health.test.ts',
  'test/e2e/sri-pack.test.ts',
  'test/e2e/steps.test.ts',
  'test/e2e/totp.test.ts',
  'test/e2e/tracing.test.ts',
  'test/e2e/walkthrough.test.ts',
  'test/embedded/bound-child.test.ts',
  'test/embedded/demo-portal.test.ts',
  'test/embedded/s3-server.test.ts',
  'test/embedded/sri-portal.test.ts',
  'test/embedded/stack-observability.test.ts',
  'test/embedded/stack.test.ts',
  'test/execution-plane/account-serial.test.ts',
  'test/execution-plane/blocker-job.test.ts',
  'test/execution-plane/blocker.test.ts',
  'test/execution-plane/breaker-blockers.test.ts',
  'test/execution-plane/browser-crash.test.ts',
  'test/execution-plane/browser-pool.test.ts',
  'test/execution-plane/captcha-job.test.ts',
  'test/execution-plane/captcha.test.ts',
  'test/execution-plane/chromium-args.test.ts',
  'test/execution-plane/egress-hardening.test.ts',
  'test/execution-plane/egress-job.test.ts',
  'test/execution-plane/egress-proxy.test.ts',
  'test/execution-plane/evidence.test.ts',
  'test/execution-plane/helper-sdk.test.ts',
  'test/execution-plane/job-envelope.test.ts',
  'test/execution-plane/live-config.test.ts',
  'test/execution-plane/live-features.test.ts',
  'test/execution-plane/log-batcher.test.ts',
  'test/execution-plane/process.test.ts',
  'test/execution-plane/recording.test.ts',
  'test/execution-plane/sandbox-rootfs.test.ts',
  'test/execution-plane/sandbox.test.ts',
  'test/execution-plane/secret-redaction.test.ts',
  'test/execution-plane/shutdown.test.ts',
  'test/execution-plane/totp-fill.test.ts',
  'test/execution-plane/trace-zip.test.ts',
  'test/execution-plane/unit.test.ts',
  'test/execution-plane/url-patterns.test.ts',
  'test/execution-plane/worker-observability.test.ts',
  'test/execution-plane/worker.test.ts',
  'test/lint/boundaries.test.ts',
  'test/ops-worker/executor.test.ts',
  'test/ops-worker/ops-boundaries.test.ts',
  'test/ops-worker/queue.test.ts',
  'test/ops-worker/task-timeout.test.ts',
  'test/shared/live-config.test.ts',
  'test/shared/provider-gate.test.ts',
  'test/shared/queue.test.ts',
  'test/shared/redis-tls.test.ts',
  'test/support/smoke.test.ts',
  'test/web/admin.test.ts',
  'test/web/dashboard.test.ts',
  'test/web/demo-template.test.ts',
  'test/web/documents-ui.test.ts',
  'test/web/first-load.test.ts',
  'test/web/handoff.test.ts',
  'test/web/keyboard.test.ts',
  'test/web/live-job.test.ts',
  'test/web/operator-session-api.test.ts',
  'test/web/provider-health.test.ts',
  'test/web/schedules-ui.test.ts',
  'test/web/session-api.test.ts',
  'test/web/session-expired.test.ts',
]);

const filters = process.argv.slice(2);
const files = walk('test').map((f) => f.split('\\').join('/')).sort()
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
// With no file, node's runner would look for tests itself and run them all.
if (files.length === 0) {
  process.stderr.write(`error: no test file matches ${filters.join(', ')}\n`);
  process.exit(1);
}
// TEST_CONCURRENCY=n runs every file in one pass, n at a time (as before the two passes).
const passes = process.env.TEST_CONCURRENCY !== undefined
  ? [{ files, concurrency: Number(process.env.TEST_CONCURRENCY) }]
  : [
      { files: files.filter((f) => UNIT_FILES.has(f)), concurrency: 2 },
      { files: files.filter((f) => LIGHT_FILES.has(f)), concurrency: 2 },
      { files: files.filter((f) => PAIRED_FILES.has(f)), concurrency: 2 },
      { files: files.filter((f) => !UNIT_FILES.has(f) && !LIGHT_FILES.has(f) && !PAIRED_FILES.has(f)), concurrency: 1 },
    ].filter((p) => p.files.length > 0);

const reportDir = mkdtempSync(join(tmpdir(), 'sri-test-durations-'));
// Made once per run and shared by every file: the migrated PGlite database the tests copy (test/support/database.ts).
const cacheDir = process.env.SRI_TEST_CACHE_DIR ? undefined : mkdtempSync(join(tmpdir(), 'sri-test-cache-'));
const cacheEnv = cacheDir ? { SRI_TEST_CACHE_DIR: cacheDir } : {};
const started = Date.now();
let failed = false;
const timings = [];
for (const [i, pass] of passes.entries()) {
  if (passes.length > 1) process.stdout.write(`\n── pass ${i + 1} of ${passes.length}: ${pass.files.length} file(s), ${pass.concurrency} at a time ──\n`);
  const durationsFile = join(reportDir, `pass-${i + 1}.jsonl`);
  const passStarted = Date.now();
  const r = spawnSync(process.execPath, [
    '--import', 'tsx', '--test',
    // The spec output on the terminal as before; the second reporter writes each file's wall time for the summary.
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    '--test-reporter=./scripts/durations-reporter.mjs', `--test-reporter-destination=${durationsFile}`,
    `--test-concurrency=${pass.concurrency}`,
    // Every file stops what it starts (by PID, in its after hooks); a file whose tests all passed but whose process
    // then stayed up (seen once, test/deploy/least-privilege.test.ts, not reproduced) must not hold the run for the
    // 300 s file timeout and fail it: once its tests are done, the file's process exits.
    '--test-force-exit',
    '--test-timeout=300000', ...pass.files,
  ], { stdio: 'inherit', env: { ...process.env, ...cacheEnv, NODE_NO_WARNINGS: '1' } });
  if (r.status !== 0) failed = true;
  let lines = [];
  try { lines = readFileSync(durationsFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)); } catch { /* no file finished */ }
  timings.push(...lines);
  const missing = pass.files.filter((f) => !lines.some((t) => t.file === f));
  if (missing.length) process.stdout.write(`no time reported for ${missing.join(', ')}\n`);
  pass.ms = Date.now() - passStarted;
}
rmSync(reportDir, { recursive: true, force: true });
if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });

const s = (ms) => `${(ms / 1000).toFixed(1)} s`;
const SHOWN = 25;
timings.sort((a, b) => b.ms - a.ms);
process.stdout.write(`\n── slowest ${Math.min(SHOWN, timings.length)} of ${timings.length} test files (wall time of each file's process) ──\n`);
for (const t of timings.slice(0, SHOWN)) process.stdout.write(`${s(t.ms).padStart(9)}  ${t.file}${t.passed ? '' : '  (failed)'}\n`);
const sum = timings.reduce((a, t) => a + t.ms, 0);
process.stdout.write(`files: ${s(sum)} in all; ${passes.map((p, i) => `pass ${i + 1} (${p.files.length} files, ${p.concurrency} at a time) ${s(p.ms)}`).join(', ')}; ` +
  `run ${s(Date.now() - started)} wall\n`);
process.exit(failed ? 1 : 0);

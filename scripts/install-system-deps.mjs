#!/usr/bin/env node
// Installs the system programs the platform runs (redis-server, chromium, bubblewrap for the script sandbox, and
// the PostgreSQL server the tests start, ffmpeg for video recordings), the container tools of the ops worker's test (podman, runc, docker-compose,
// docker-registry, busybox-static, the docker CLI) and promtool (the tests check the alert rules and /metrics with it) when
// they are missing. As root on Debian/Ubuntu it uses apt-get; elsewhere it prints the install line.
// Set SRI_SKIP_SYSTEM_DEPS=1 to skip (for example in a container image that already has them).
//
// The packages are wanted for their programs, never as services: the platform starts redis-server and PostgreSQL
// itself, and promtool's package (prometheus) would run a Prometheus server. So apt-get runs with a policy-rc.d that
// denies every service start (Debian's own mechanism, honoured by invoke-rc.d and deb-systemd-invoke, with or without
// systemd), removed after; and the prometheus service this installed is disabled and, on systemd, stopped.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

if (process.env.SRI_SKIP_SYSTEM_DEPS === '1') process.exit(0);

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const pgBin = () => ['17', '16', '15', '14', '13'].some((v) => existsSync(`/usr/lib/postgresql/${v}/bin/postgres`)) || has('postgres');

const wanted = [
  { pkg: 'redis-server', ok: () => has('redis-server'), brew: 'redis' },
  { pkg: 'chromium', ok: () => has('chromium') || has('chromium-browser') || !!process.env.CHROMIUM_PATH, brew: '--cask chromium' },
  { pkg: 'postgresql', ok: pgBin, brew: 'postgresql' },
  // The workers' script sandbox (WORKER_SANDBOX=bwrap); prlimit comes with util-linux, which Debian always has.
  { pkg: 'bubblewrap', ok: () => has('bwrap') || process.platform !== 'linux', brew: '' },
  // Playwright's video encoder for recordings (docs/scripts.md "Recordings"); linked where Playwright looks (below).
  { pkg: 'ffmpeg', ok: () => has('ffmpeg'), brew: 'ffmpeg' },
  // promtool only (test/deploy/promtool.test.ts): the package's Prometheus service is not wanted (below).
  { pkg: 'prometheus', ok: () => has('promtool'), brew: 'prometheus' },
  // The ops worker's integration test (test/ops-worker/podman.test.ts, docs/operations.md): a container engine that
  // runs without a daemon (podman + runc, serving the Docker API on a socket), compose, the docker CLI, a local
  // registry and busybox-static for a base image built without the internet. Linux only.
  ...(process.platform === 'linux' ? [
    { pkg: 'podman', ok: () => has('podman'), brew: '' },
    { pkg: 'runc', ok: () => has('runc'), brew: '' },
    { pkg: 'docker-compose', ok: () => has('docker-compose'), brew: '' },
    { pkg: 'docker-registry', ok: () => has('docker-registry'), brew: '' },
    { pkg: 'busybox-static', ok: () => existsSync('/bin/busybox') && spawnSync('sh', ['-c', 'ldd /bin/busybox 2>&1 | grep -q "not a dynamic"'], { stdio: 'ignore' }).status === 0, brew: '' },
    // The docker CLI only (Debian 12 has no docker-cli package): its daemon is not wanted and is disabled below.
    { pkg: 'docker.io', ok: () => has('docker'), brew: '' },
  ] : []),
];
const missing = wanted.filter((w) => !w.ok());
if (missing.length === 0) { linkFfmpeg(); process.exit(0); }

const names = missing.map((m) => m.pkg).join(' ');
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const POLICY_RC_D = '/usr/sbin/policy-rc.d';
const POLICY_MARK = '# sri: install-system-deps.mjs, removed when apt-get is done';
const installed = (pkg) => spawnSync('dpkg-query', ['-W', '--showformat=${Status}', pkg], { encoding: 'utf8' }).stdout?.includes('install ok installed') === true;
const quietly = (cmd, args) => spawnSync(cmd, args, { stdio: 'ignore' });

if (process.platform === 'linux' && has('apt-get') && isRoot) {
  console.log(`[sri] installing system packages: ${names}`);
  const prometheusBefore = installed('prometheus');
  // 101 = "action not allowed": no package starts its service. One the system already has is left as it is.
  const ownPolicy = !existsSync(POLICY_RC_D);
  if (ownPolicy) writeFileSync(POLICY_RC_D, `#!/bin/sh\n${POLICY_MARK}\nexit 101\n`, { mode: 0o755 });
  try {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing.map((m) => m.pkg)], {
      stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } catch {
    console.error(`[sri] apt-get failed; install by hand: apt-get install -y ${names}`);
    process.exitCode = 1;
  } finally {
    if (ownPolicy && existsSync(POLICY_RC_D) && readFileSync(POLICY_RC_D, 'utf8').includes(POLICY_MARK)) rmSync(POLICY_RC_D);
  }
  if (!prometheusBefore && installed('prometheus')) {
    // Installed for promtool alone: no Prometheus server at boot either (the package enables its unit and init script).
    if (has('deb-systemd-helper')) quietly('deb-systemd-helper', ['disable', 'prometheus.service']);
    if (has('update-rc.d')) quietly('update-rc.d', ['prometheus', 'disable']);
    if (existsSync('/run/systemd/system') && has('systemctl')) quietly('systemctl', ['stop', 'prometheus.service']);
    console.log('[sri] prometheus installed for promtool; its service is disabled');
  }
  for (const svc of ['docker-registry', 'docker']) {
    // Installed for their programs (the tests start a registry and podman themselves): no daemon at boot.
    if (!missing.some((m) => m.pkg === (svc === 'docker' ? 'docker.io' : svc))) continue;
    if (has('deb-systemd-helper')) quietly('deb-systemd-helper', ['disable', `${svc}.service`]);
    if (has('update-rc.d')) quietly('update-rc.d', [svc, 'disable']);
    if (existsSync('/run/systemd/system') && has('systemctl')) quietly('systemctl', ['stop', `${svc}.service`]);
  }
  if (process.exitCode) process.exit(process.exitCode);
  linkFfmpeg();
} else {
  const line = process.platform === 'darwin'
    ? missing.map((m) => `brew install ${m.brew}`).join(' && ')
    : has('apt-get') ? `sudo apt-get install -y ${names}` : `install ${names} with your system's package manager`;
  console.warn(`[sri] missing system programs: ${names}. Install them: ${line}`);
}

/**
 * Playwright records video with its own ffmpeg build, looked up only in its browsers folder
 * ($PLAYWRIGHT_BROWSERS_PATH, else ~/.cache/ms-playwright on Linux) as ffmpeg-<revision>/ffmpeg-linux; that download
 * needs the internet (`npx playwright install ffmpeg`). The system's ffmpeg does the same job: link it there, so a
 * recording job of `npm start`'s worker has its video (the worker image does the same, deploy/docker/Dockerfile).
 */
function linkFfmpeg() {
  if (process.platform !== 'linux' || !existsSync('/usr/bin/ffmpeg')) return;
  try {
    const browsers = JSON.parse(readFileSync(new URL('../node_modules/playwright-core/browsers.json', import.meta.url), 'utf8')).browsers;
    const revision = browsers.find((b) => b.name === 'ffmpeg')?.revision;
    if (!revision) return;
    const root = process.env.PLAYWRIGHT_BROWSERS_PATH || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'ms-playwright');
    const dir = join(root, `ffmpeg-${revision}`);
    if (existsSync(join(dir, 'ffmpeg-linux'))) return;
    mkdirSync(dir, { recursive: true });
    symlinkSync('/usr/bin/ffmpeg', join(dir, 'ffmpeg-linux'));
    console.log(`[sri] linked /usr/bin/ffmpeg as Playwright's video encoder (${dir})`);
  } catch (e) {
    console.warn(`[sri] could not link ffmpeg for Playwright's video recordings: ${e.message} (recordings then keep the trace only)`);
  }
}

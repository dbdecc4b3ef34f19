#!/usr/bin/env node
// Installs the system programs the platform runs (redis-server, chromium, bubblewrap for the script sandbox, and
// the PostgreSQL server the tests start) when they are missing. As root on Debian/Ubuntu it uses apt-get; elsewhere it prints the install line.
// Set SRI_SKIP_SYSTEM_DEPS=1 to skip (for example in a container image that already has them).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

if (process.env.SRI_SKIP_SYSTEM_DEPS === '1') process.exit(0);

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const pgBin = () => ['17', '16', '15', '14', '13'].some((v) => existsSync(`/usr/lib/postgresql/${v}/bin/postgres`)) || has('postgres');

const wanted = [
  { pkg: 'redis-server', ok: () => has('redis-server'), brew: 'redis' },
  { pkg: 'chromium', ok: () => has('chromium') || has('chromium-browser') || !!process.env.CHROMIUM_PATH, brew: '--cask chromium' },
  { pkg: 'postgresql', ok: pgBin, brew: 'postgresql' },
  // The workers' script sandbox (WORKER_SANDBOX=bwrap); prlimit comes with util-linux, which Debian always has.
  { pkg: 'bubblewrap', ok: () => has('bwrap') || process.platform !== 'linux', brew: '' },
];
const missing = wanted.filter((w) => !w.ok());
if (missing.length === 0) process.exit(0);

const names = missing.map((m) => m.pkg).join(' ');
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (process.platform === 'linux' && has('apt-get') && isRoot) {
  console.log(`[sri] installing system packages: ${names}`);
  try {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing.map((m) => m.pkg)], {
      stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } catch {
    console.error(`[sri] apt-get failed; install by hand: apt-get install -y ${names}`);
    process.exit(1);
  }
} else {
  const line = process.platform === 'darwin'
    ? missing.map((m) => `brew install ${m.brew}`).join(' && ')
    : has('apt-get') ? `sudo apt-get install -y ${names}` : `install ${names} with your system's package manager`;
  console.warn(`[sri] missing system programs: ${names}. Install them: ${line}`);
}

/**
 * Building the dashboard (src/web) with Vite, for `npm run build` (into DIST/web) and for `sri up` on a checkout,
 * which builds it only when it is missing or its sources changed since the last build (docs/dashboard.md).
 *
 * "Changed" is a SHA-256 over every file under src/web (paths and bytes) and package-lock.json (the versions of
 * Vite, React and the rest): hashing a few dozen small files takes milliseconds, so an unchanged checkout starts
 * without Vite. The build goes to a temporary directory that replaces the old one whole, so a server reading the
 * old build never sees half of the new one; a lock directory keeps two starting stacks from building at once.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { WEB_DIST_DIR } from '../control-plane/http/web-app.ts';

const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WEB_SRC_DIR = join(PROJECT_ROOT, 'src', 'web');
/** Written into the build: the source hash it was built from. */
export const WEB_STAMP_FILE = '.source-hash';
/** A lock older than this is a crashed build's, and is taken over. */
const STALE_LOCK_MS = 10 * 60_000;

function filesUnder(dir: string): string[] {
  return readdirSync(dir).sort().flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

/** The hash of what the build is made from: src/web/** and package-lock.json. */
export function webSourceHash(srcDir = WEB_SRC_DIR): string {
  const h = createHash('sha256');
  const inputs = [...filesUnder(srcDir), join(PROJECT_ROOT, 'package-lock.json')].filter((f) => existsSync(f));
  for (const f of inputs) {
    h.update(relative(PROJECT_ROOT, f).split(sep).join('/')).update('\0').update(readFileSync(f)).update('\0');
  }
  return h.digest('hex');
}

/** Why the build in `outDir` must be made again, or undefined when it is the build of the current sources. */
export function webBuildStale(outDir = WEB_DIST_DIR, hash = webSourceHash()): string | undefined {
  if (!existsSync(join(outDir, 'index.html'))) return `${relative(process.cwd(), outDir) || outDir} has no build`;
  let stamp = '';
  try {
    stamp = readFileSync(join(outDir, WEB_STAMP_FILE), 'utf8').trim();
  } catch {
    return 'the build does not say what it was built from';
  }
  return stamp === hash ? undefined : 'src/web changed since the last build';
}

export interface WebBuildResult {
  outDir: string;
  /** Bytes of the JavaScript the first page load fetches (index.html's scripts), and gzipped. */
  entryBytes: number;
  entryGzipBytes: number;
  ms: number;
}

/** Builds the dashboard into `outDir` (replaced whole). Needs Vite: a checkout with its devDependencies. */
export async function buildWeb(outDir = WEB_DIST_DIR): Promise<WebBuildResult> {
  const t0 = Date.now();
  const hash = webSourceHash();
  const tmp = `${outDir}.tmp-${process.pid}-${Date.now()}`;
  // A devDependency: production images run a build and never get here.
  const vite = await import('vite');
  try {
    await vite.build({
      root: WEB_SRC_DIR, configFile: join(WEB_SRC_DIR, 'vite.config.ts'), logLevel: 'warn', mode: 'production',
      build: { outDir: tmp, emptyOutDir: true },
    });
    writeFileSync(join(tmp, WEB_STAMP_FILE), `${hash}\n`);
    const old = `${outDir}.old-${process.pid}-${Date.now()}`;
    mkdirSync(dirname(outDir), { recursive: true });
    if (existsSync(outDir)) renameSync(outDir, old);
    renameSync(tmp, outDir);
    rmSync(old, { recursive: true, force: true });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return { outDir, ...entrySize(outDir), ms: Date.now() - t0 };
}

/** The size of the scripts index.html loads (what a first visit downloads before any page's own chunk). */
export function entrySize(outDir: string): { entryBytes: number; entryGzipBytes: number } {
  const html = readFileSync(join(outDir, 'index.html'), 'utf8');
  const scripts = [...html.matchAll(/<(?:script[^>]*src|link[^>]*rel="modulepreload"[^>]*href)="\/([^"]+\.js)"/g)].map((m) => m[1]!);
  let entryBytes = 0;
  let entryGzipBytes = 0;
  for (const s of new Set(scripts)) {
    const bytes = readFileSync(join(outDir, s));
    entryBytes += bytes.length;
    entryGzipBytes += gzipSize(bytes);
  }
  return { entryBytes, entryGzipBytes };
}

function gzipSize(bytes: Buffer): number {
  // Level 9, as a server or CDN would serve it.
  return gzipSync(bytes, { level: 9 }).length;
}

export interface EnsureWebOptions {
  outDir?: string;
  onProgress?: (line: string) => void;
  /** How long to wait for another process's build. @default 5 minutes */
  lockWaitMs?: number;
}

/**
 * Builds the dashboard when its build is missing or stale; returns what it did. From a build (`dist/`, no src/web)
 * there is nothing to check: `npm run build` made dist/web.
 */
export async function ensureWebBuilt(opts: EnsureWebOptions = {}): Promise<'fresh' | 'built' | 'no-sources'> {
  if (!existsSync(join(WEB_SRC_DIR, 'index.html'))) return 'no-sources';
  const outDir = opts.outDir ?? WEB_DIST_DIR;
  const progress = opts.onProgress ?? (() => {});
  const lock = `${outDir}.lock`;
  const deadline = Date.now() + (opts.lockWaitMs ?? 5 * 60_000);
  for (;;) {
    const why = webBuildStale(outDir);
    if (!why) return 'fresh';
    try {
      mkdirSync(dirname(lock), { recursive: true });
      mkdirSync(lock);
    } catch {
      // Another process is building: wait for it (and then find the build fresh), unless its lock is left over.
      const age = (() => {
        try {
          return Date.now() - statSync(lock).mtimeMs;
        } catch {
          return 0;
        }
      })();
      if (age > STALE_LOCK_MS) rmSync(lock, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new Error(`another process has been building the dashboard for too long (${lock}); remove it if no build runs`);
      else await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    try {
      progress(`building the dashboard (${why}) into ${relative(process.cwd(), outDir) || outDir} …`);
      const r = await buildWeb(outDir);
      progress(`dashboard built in ${(r.ms / 1000).toFixed(1)} s (first load ${(r.entryGzipBytes / 1024).toFixed(0)} KB of JavaScript gzipped)`);
      return 'built';
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}

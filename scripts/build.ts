/**
 * `npm run build [-- --out-dir DIR]`: what production runs (the images: `node dist/src/control-plane/main.js`,
 * `node dist/src/execution-plane/main.js`, `node bin/sri.js`), into dist/ unless told otherwise.
 *
 *   DIR/src/**.js          tsc -p tsconfig.build.json: the sources, relative imports rewritten from .ts to .js
 *   DIR/src/**  (the rest) every file under src/ that is not TypeScript, at the same place: the Lua scripts the
 *                          modules read through import.meta.url (shared/queue/lua/**, shared/metrics/lua,
 *                          control-plane/jobs/lua, control-plane/auth/lua)
 *   DIR/migrations/*.sql   the migrations (control-plane/db/migrate.ts reads ../../../migrations/)
 *   DIR/src/execution-plane/script/sandbox/child.bundle.js
 *                          the script sandbox's child, bundled here once by esbuild: compiled workers read it, so
 *                          production needs no esbuild and no worker bundles at start
 *   DIR/package.json       {"type": "module"}: the .js files are ES modules wherever DIR is
 *   DIR/web/               the dashboard (src/web) built by Vite: index.html and hashed assets/, which the API
 *                          serves at / (src/control-plane/http/web-app.ts); src/web itself is not copied
 *
 * The layout mirrors the repository's (src/, migrations/ side by side), so every path a module derives from its
 * own URL holds in both. The directory is emptied first: a file deleted from src/ leaves no stale copy behind.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildChildBundle, CHILD_BUNDLE_FILE } from '../src/execution-plane/script/sandbox/process.ts';
import { buildWeb, type WebBuildResult } from '../src/embedded/web-build.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function outDirFrom(argv: readonly string[]): string {
  const i = argv.indexOf('--out-dir');
  const dir = resolve(i >= 0 && argv[i + 1] ? argv[i + 1]! : join(ROOT, 'dist'));
  // It is emptied: never the repository, one of its parents, or a folder of sources.
  const inside = (a: string, b: string) => a === b || a.startsWith(b + sep);
  if (inside(ROOT, dir) || ['src', 'migrations', 'scripts', 'bin', 'test', 'node_modules', 'deploy', 'docs'].some((d) => inside(dir, join(ROOT, d)))) {
    throw new Error(`--out-dir ${dir}: refusing to empty a folder that holds the repository or its sources`);
  }
  return dir;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

function copy(from: string, to: string): void {
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(from, to);
}

export async function build(outDir: string): Promise<{ js: number; assets: string[]; migrations: number; web: WebBuildResult }> {
  rmSync(outDir, { recursive: true, force: true });
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', outDir], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`tsc failed (exit ${r.status ?? r.signal})`);

  // src/web is the dashboard's source: Vite builds it into DIR/web below; none of it is a runtime file of src/.
  const webSrc = join(ROOT, 'src', 'web') + sep;
  const assets = filesUnder(join(ROOT, 'src')).filter((f) => !f.endsWith('.ts') && !f.startsWith(webSrc)).map((f) => relative(ROOT, f));
  for (const a of assets) copy(join(ROOT, a), join(outDir, a));
  const migrations = readdirSync(join(ROOT, 'migrations')).filter((f) => f.endsWith('.sql'));
  for (const m of migrations) copy(join(ROOT, 'migrations', m), join(outDir, 'migrations', m));

  const js = filesUnder(join(outDir, 'src')).filter((f) => f.endsWith('.js')).length;
  writeFileSync(join(outDir, 'src', 'execution-plane', 'script', 'sandbox', CHILD_BUNDLE_FILE), buildChildBundle());
  writeFileSync(join(outDir, 'package.json'), `${JSON.stringify({ type: 'module', private: true }, null, 2)}\n`);
  const web = await buildWeb(join(outDir, 'web'));
  return { js, assets, migrations: migrations.length, web };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outDir = outDirFrom(process.argv.slice(2));
  const t0 = Date.now();
  const b = await build(outDir);
  console.log(`built ${relative(process.cwd(), outDir) || '.'}: ${b.js} modules, ${b.assets.length} other files from src/, `
    + `${b.migrations} migrations, the sandbox child bundle, the dashboard (web/, first load ${(b.web.entryGzipBytes / 1024).toFixed(0)} KB of JavaScript gzipped) `
    + `(${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

#!/usr/bin/env node
// Launcher for `npx sri …` (and `node bin/sri.js …` in the images). It runs the CLI in this same process, so
// signals (Ctrl-C) reach `sri up` directly:
// - from the sources, through tsx, where tsx is installed (a checkout after `npm install`: dev dependencies
//   included) — the code being worked on, never a stale build;
// - else from the build `npm run build` wrote next to it (../dist: the images, or an `npm install --omit=dev`).
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
const built = new URL('../dist/src/cli/main.js', import.meta.url);

function resolves(specifier) {
  try {
    import.meta.resolve(specifier);
    return true;
  } catch {
    return false;
  }
}

let entry;
if (existsSync(source) && resolves('tsx')) {
  await import('tsx');
  entry = source;
} else if (existsSync(built)) {
  entry = built;
} else {
  // The message of BUILD_MISSING in src/shared/errors.ts, which cannot be loaded here (it is TypeScript, or in dist/).
  process.stderr.write('error BUILD_MISSING: sri found neither tsx to run the sources (src/) nor a build (dist/); run `npm install` in a checkout, or `npm run build` before a production install (npm ci --omit=dev).\n');
  process.exit(1);
}
const { main } = await import(entry.href);
await main(process.argv);

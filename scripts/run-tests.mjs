#!/usr/bin/env node
// Runs every test file under test/ with node's test runner (files one at a time: Chromium and PGlite each want
// a core on a 2-core machine). Extra arguments filter files by substring: `npm test -- worker`.
import { readdirSync, statSync } from 'node:fs';
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
const filters = process.argv.slice(2);
const files = walk('test').sort().filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
// With no file, node's runner would look for tests itself and run them all.
if (files.length === 0) {
  process.stderr.write(`error: no test file matches ${filters.join(', ')}\n`);
  process.exit(1);
}
const r = spawnSync(process.execPath, [
  '--import', 'tsx', '--test', '--test-reporter=spec', `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 1}`,
  // Every file stops what it starts (by PID, in its after hooks); a file whose tests all passed but whose process
  // then stayed up (seen once, test/deploy/least-privilege.test.ts, not reproduced) must not hold the run for the
  // 300 s file timeout and fail it: once its tests are done, the file's process exits.
  '--test-force-exit',
  '--test-timeout=300000', ...files,
], { stdio: 'inherit', env: { ...process.env, NODE_NO_WARNINGS: '1' } });
process.exit(r.status ?? 1);

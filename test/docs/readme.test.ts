import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string> };

describe('README.md', () => {
  it('opens with what the platform is, then exactly two commands: install+start and test', () => {
    const firstBlock = /```\w*\n([\s\S]*?)```/.exec(readme);
    assert.ok(firstBlock, 'a code block');
    const intro = readme.slice(0, firstBlock.index);
    assert.match(intro, /^# .+\n\n[^`]{200,}/, 'a title and a paragraph before the commands');
    assert.deepEqual(firstBlock[1]!.trim().split('\n'), ['npm install && npm start', 'npm test']);
  });

  it('names commands that exist: npm start runs `sri up`, npm test, the sri bin', () => {
    assert.equal(pkg.scripts['start'], 'tsx src/cli/main.ts up');
    assert.ok(pkg.scripts['test']);
    assert.equal(pkg.bin['sri'], 'bin/sri.js');
    assert.ok(existsSync(join(ROOT, 'bin', 'sri.js')));
  });

  it('links only to files that exist', () => {
    const links = [...readme.matchAll(/\]\(([^)#]+)\)/g)].map((m) => m[1]!).filter((l) => !/^https?:/.test(l));
    assert.ok(links.length >= 4);
    for (const l of links) assert.ok(existsSync(join(ROOT, l)), `README links to missing ${l}`);
  });

  it('covers the walkthrough, the worker\'s manual test and external services', () => {
    for (const s of ['/api/auth/register', '/api/providers/demo/connect', '/api/flows', '/activate', '/api/run', '/api/jobs/',
      'redis-cli LPUSH', 'redis-cli SUBSCRIBE', 'redis-cli SET sri:sessions:', 'openssl dgst -sha256 -hmac', 'sri demo',
      'REDIS_URL', 'DATABASE_URL', 'S3_ENDPOINT']) {
      assert.ok(readme.includes(s), `README mentions ${s}`);
    }
  });
});

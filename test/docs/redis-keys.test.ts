import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { keys } from '../../src/shared/keys.ts';

const doc = readFileSync(new URL('../../docs/redis-keys.md', import.meta.url), 'utf8');

describe('docs/redis-keys.md', () => {
  it('lists every entry of keys with the key it builds', () => {
    for (const [name, build] of Object.entries(keys)) {
      assert.ok(doc.includes(`\`keys.${name}\``), `add keys.${name} to docs/redis-keys.md`);
      const sample = typeof build === 'function'
        ? (build as (...a: string[]) => string)(...Array.from({ length: build.length }, (_, i) => `{${['a', 'b', 'c'][i]}}`))
        : build;
      // The documented key has the same shape: same literal parts, placeholders in the same places.
      const shape = sample.replace(/\{[a-c]\}/g, '{}');
      const documented = [...doc.matchAll(/^\| `([^`]+)` \| `keys\.(\w+)`/gm)].find((m) => m[2] === name)?.[1];
      assert.ok(documented, `keys.${name} needs a table row`);
      assert.equal(documented.replace(/\{\w+\}/g, '{}'), shape, `keys.${name}`);
    }
  });

  it('documents no entry that keys does not have', () => {
    const stale = [...doc.matchAll(/`keys\.(\w+)`/g)].map((m) => m[1]!).filter((n) => !(n in keys));
    assert.deepEqual(stale, []);
  });
});

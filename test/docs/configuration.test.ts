import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { commonSettings, type SettingsTable } from '../../src/shared/config.ts';
import { apiSettings } from '../../src/control-plane/config.ts';
import { workerSettings } from '../../src/execution-plane/config.ts';
import { embeddedSettings } from '../../src/embedded/config.ts';
import { opsWorkerSettings } from '../../src/ops-worker/config.ts';

const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
const example = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8');
/** Variables documented as rows of a table: "| `NAME` | default | meaning |". */
const documented = new Set([...doc.matchAll(/^\| `([A-Z][A-Z0-9_]*)` \|/gm)].map((m) => m[1]!));
const tables: Record<string, SettingsTable> = { commonSettings, apiSettings, workerSettings, embeddedSettings, opsWorkerSettings };
const allEnv = new Set(Object.values(tables).flatMap((t) => Object.values(t).map((s) => s.env)));

describe('docs/configuration.md', () => {
  for (const [name, table] of Object.entries(tables)) {
    it(`documents every variable of ${name}`, () => {
      const missing = Object.values(table).map((s) => s.env).filter((env) => !documented.has(env));
      assert.deepEqual(missing, [], `add these to docs/configuration.md: ${missing.join(', ')}`);
    });
  }

  it('documents no variable that no settings table reads', () => {
    const stale = [...documented].filter((env) => !allEnv.has(env));
    assert.deepEqual(stale, [], `remove or re-add to a table: ${stale.join(', ')}`);
  });

  it('.env.example lists every variable (commented, with its default)', () => {
    const listed = new Set([...example.matchAll(/^#?\s?([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]!));
    const missing = [...allEnv].filter((env) => !listed.has(env));
    assert.deepEqual(missing, [], `add these to .env.example: ${missing.join(', ')}`);
  });
});

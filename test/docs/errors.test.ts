import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERRORS, ERROR_CODES } from '../../src/shared/errors.ts';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
/** Rows "| `CODE` | status | yes/no | text |". */
const rows = new Map([...doc.matchAll(/^\| `([A-Z][A-Z0-9_]*)` \| (\d+) \| (yes|no) \| (.+) \|$/gm)]
  .map((m) => [m[1]!, { status: Number(m[2]), retryable: m[3] === 'yes', text: m[4]! }]));

describe('docs/errors.md', () => {
  it('documents every code of the ERRORS catalogue', () => {
    const missing = ERROR_CODES.filter((c) => !rows.has(c));
    assert.deepEqual(missing, [], `add these to docs/errors.md: ${missing.join(', ')}`);
  });

  it('documents no code that the catalogue does not have', () => {
    const stale = [...rows.keys()].filter((c) => !(c in ERRORS));
    assert.deepEqual(stale, [], `remove from docs/errors.md or add to ERRORS: ${stale.join(', ')}`);
  });

  it('gives each code the status and retryability of the catalogue, and says what to do', () => {
    for (const code of ERROR_CODES) {
      const row = rows.get(code);
      if (!row) continue;
      assert.equal(row.status, ERRORS[code].status, `${code} status`);
      assert.equal(row.retryable, ERRORS[code].retryable, `${code} retryable`);
      assert.ok(row.text.length > 20, `${code} needs an explanation`);
    }
  });
});

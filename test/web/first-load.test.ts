/**
 * The dashboard stays fast to open: the JavaScript of its first load (the scripts index.html loads and preloads —
 * the shell, the login page and the libraries; every other page is a chunk of its own) is under 300 KB gzipped
 * (issue 12's budget; docs/dashboard.md gives today's figure).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WEB_DIST_DIR } from '../../src/control-plane/http/web-app.ts';
import { ensureWebBuilt, entrySize } from '../../src/embedded/web-build.ts';

const FIRST_LOAD_BUDGET_GZIP_BYTES = 300 * 1024;

describe('the built dashboard\'s first load', () => {
  it('fetches under 300 KB of JavaScript gzipped', async () => {
    await ensureWebBuilt();
    const { entryBytes, entryGzipBytes } = entrySize(WEB_DIST_DIR);
    // A build whose index.html loads no script would pass any budget: there must be something measured.
    assert.ok(entryBytes > 10 * 1024, `index.html loads ${entryBytes} bytes of JavaScript`);
    assert.ok(entryGzipBytes < FIRST_LOAD_BUDGET_GZIP_BYTES,
      `the first load is ${(entryGzipBytes / 1024).toFixed(1)} KB of JavaScript gzipped (${(entryBytes / 1024).toFixed(0)} KB raw); the budget is 300 KB`);
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ESLint } from 'eslint';

// Linted as the text of existing files (the typed parser needs a file the project knows).
// The plane boundaries are enforced by lint (eslint.config.js); this proves the rules fire on a violation.
async function lintAs(filePath: string, code: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: process.cwd() });
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('import boundaries', () => {
  it('stops the execution plane from importing a PostgreSQL driver', async () => {
    const msgs = await lintAs('src/execution-plane/config.ts', "import pg from 'pg';\nexport const x = pg;\n");
    assert.ok(msgs.some((m) => m.includes('PostgreSQL driver')), msgs.join('\n'));
  });

  it('stops the execution plane from importing the control plane or PGlite', async () => {
    const msgs = await lintAs('src/execution-plane/config.ts',
      "import { openDatabase } from '../control-plane/db/index.ts';\nimport { PGlite } from '@electric-sql/pglite';\nexport const x = [openDatabase, PGlite];\n");
    assert.equal(msgs.length, 2, msgs.join('\n'));
  });

  it('stops the web app from importing either plane, their shared contracts or a Node.js module', async () => {
    const msgs = await lintAs('src/web/lib/format.ts',
      "import { keys } from '../../shared/keys.ts';\nimport { SriError } from '../../control-plane/http/errors.ts';\nimport { readFileSync } from 'node:fs';\nexport const x = [keys, SriError, readFileSync];\n");
    assert.equal(msgs.length, 3, msgs.join('\n'));
    assert.ok(msgs.some((m) => m.includes('generated API types')), msgs.join('\n'));
  });

  it('stops the SRI parsers and data from importing a plane, the embedded stack or the CLI', async () => {
    const msgs = await lintAs('src/sri/parse.ts',
      "import { startWorker } from '../execution-plane/worker.ts';\nimport { startDemoPortal } from '../embedded/demo-portal.ts';\nexport const x = [startWorker, startDemoPortal];\n");
    assert.equal(msgs.length, 2, msgs.join('\n'));
  });

  it('stops shared contracts from importing either plane', async () => {
    const msgs = await lintAs('src/shared/keys.ts', "import { startWorker } from '../execution-plane/worker.ts';\nexport const x = startWorker;\n");
    assert.equal(msgs.length, 1, msgs.join('\n'));
  });
});

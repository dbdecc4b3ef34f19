/**
 * The API's contract as a client meets it: the whole stack (`sri up`'s: redis-server, the embedded S3 server,
 * PGlite, the API, a worker with Chromium, the demo portal) on random ports; types generated from the document
 * that API serves at /docs/json (openapi-typescript, into a temporary directory); walkthrough-client.ts type-checked
 * against them — no cast, no `any` — and then run against the stack: register → connect → flow → activate → run →
 * job → detail with artifacts → log.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import type { OpenAPIV3 } from 'openapi-types';
import { loginToDemoPortal } from '../../src/cli/demo.ts';
import { DEMO_PASSWORD, DEMO_USERNAME } from '../../src/embedded/demo-portal.ts';
import { startStack, type StackHandle } from '../../src/embedded/stack.ts';
import { typesOf } from '../../scripts/generate-api-types.ts';
import { tempDir } from '../support/services.ts';
import type { walkthrough as Walkthrough, WalkthroughOutcome } from './walkthrough-client.ts';
import { seedStackDatabase } from '../support/database.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLIENT = join(ROOT, 'test', 'contract', 'walkthrough-client.ts');
const TYPES_IMPORT = "from '../../src/web/api/schema.d.ts';";

/** The caller's environment without anything that would point the stack at external services. */
function cleanEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(REDIS_URL|S3_|DATABASE_URL|POSTGRES_|API_|JWT_|SCRIPT_SIGNING_SECRET|WORKER_ID|PORT|HOST|DEMO_PORT|DATA_DIR|LOG_DIR|WORKERS$|METRICS_TOKEN|OPERATOR_TOKEN)/.test(k)) delete env[k];
  }
  return env;
}

/** Casts, `any` and non-null assertions in `file`: the client must be typed by the generated types alone. */
function escapes(file: ts.SourceFile): string[] {
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    const at = () => `${file.fileName}:${file.getLineAndCharacterOfPosition(node.getStart(file)).line + 1}: ${node.getText(file).slice(0, 80)}`;
    if (ts.isAsExpression(node) && !(ts.isTypeReferenceNode(node.type) && node.type.typeName.getText(file) === 'const')) found.push(`cast ${at()}`);
    if (ts.isTypeAssertionExpression(node)) found.push(`cast ${at()}`);
    if (ts.isNonNullExpression(node)) found.push(`non-null assertion ${at()}`);
    if (node.kind === ts.SyntaxKind.AnyKeyword) found.push(`any ${at()}`);
    ts.forEachChild(node, visit);
  };
  visit(file);
  return found;
}

describe('a client generated from the served OpenAPI document drives the README walkthrough', () => {
  const dir = tempDir('sri-contract-');
  const clientDir = join(dir.path, 'client');
  const workerOutput: string[] = [];
  let stack: StackHandle | undefined;
  let typedClient = '';
  let outcome: WalkthroughOutcome | undefined;

  before(async () => {
    // A migrated PGlite in DATA_DIR (test/support/database.ts): the stack resumes it instead of running initdb.
    await seedStackDatabase(join(dir.path, 'data'));
    stack = await startStack({
      env: {
        ...cleanEnv(),
        DATA_DIR: join(dir.path, 'data'), LOG_DIR: join(dir.path, 'logs'), LOG_LEVEL: 'warn',
        EMBEDDED_REDIS_PORT: '0', EMBEDDED_S3_PORT: '0', PORT: '0', DEMO_PORT: '0', WORKERS: '1',
      },
      // The dashboard is not what this test is about, and building it would take minutes of a loaded machine.
      web: 'skip',
      onWorkerOutput: (id, line) => { workerOutput.push(`[${id}] ${line}`); },
    });
  });

  after(async () => {
    await stack?.stop({ graceMs: 5000 });
    dir.remove();
  });

  it('type-checks the client against types generated from the served document, with no cast and no any', async () => {
    const res = await fetch(`${stack!.apiUrl}/docs/json`);
    assert.equal(res.status, 200);
    const doc = await res.json() as OpenAPIV3.Document;
    const source = readFileSync(CLIENT, 'utf8');
    assert.ok(source.includes(TYPES_IMPORT), `walkthrough-client.ts imports its types ${TYPES_IMPORT}`);

    // A directory of its own: the fresh types, the client importing them, the project's packages, ES modules.
    mkdirSync(clientDir);
    writeFileSync(join(clientDir, 'schema.d.ts'), await typesOf(doc));
    typedClient = join(clientDir, 'walkthrough-client.ts');
    writeFileSync(typedClient, source.replace(TYPES_IMPORT, "from './schema.d.ts';"));
    writeFileSync(join(clientDir, 'package.json'), '{ "type": "module" }\n');
    symlinkSync(join(ROOT, 'node_modules'), join(clientDir, 'node_modules'), 'dir');

    const program = ts.createProgram([typedClient], {
      target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true, noUncheckedIndexedAccess: true, exactOptionalPropertyTypes: false, noEmit: true, skipLibCheck: true,
      allowImportingTsExtensions: true, verbatimModuleSyntax: true, types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')],
    });
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')
      + (d.file && d.start !== undefined ? ` (${d.file.fileName}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1})` : ''));
    assert.deepEqual(diagnostics, [], 'the client type-checks against the served API');
    assert.deepEqual(escapes(program.getSourceFile(typedClient)!), [], 'the client is typed by the generated types alone');
  });

  it('runs the walkthrough with that client to a done job with its artifacts and log', async () => {
    // Never skipped: without the client the previous test has failed, and this one fails too rather than pass empty.
    assert.ok(typedClient, 'the generated client was written by the previous test');
    const client = await import(pathToFileURL(typedClient).href) as { walkthrough: typeof Walkthrough };
    outcome = await client.walkthrough({
      apiUrl: stack!.apiUrl, portalUrl: stack!.portalUrl, portalSession: await loginToDemoPortal(stack!.portalUrl),
      portalUser: DEMO_USERNAME, portalPassword: DEMO_PASSWORD, jobTimeoutMs: 120_000,
    });
    assert.equal(outcome.job.status, 'done', `job ${outcome.job.status}: ${JSON.stringify(outcome.job.error)}\n${workerOutput.join('\n')}`);
    assert.equal(outcome.run.status, 202);
    assert.equal(outcome.user.role, 'admin');
    assert.equal(outcome.flow.active, false, 'created inactive, then activated');
    assert.equal(outcome.job.id, outcome.run.jobId);
    assert.equal(outcome.job.error, null);
    assert.deepEqual(outcome.job.artifacts.map((a) => a.name).sort(), ['INV-1001.pdf', 'execution.log', 'parsed-data.json', 'screenshot-0.png']);
    for (const a of outcome.job.artifacts) {
      const got = await fetch(a.url);
      assert.equal(got.status, 200, `${a.name}: ${a.url}`);
      assert.equal((await got.arrayBuffer()).byteLength, a.bytes, `${a.name} has the size the detail says`);
    }
    const result = outcome.job.result as { invoices?: unknown[] } | null;
    assert.ok(Array.isArray(result?.invoices) && result.invoices.length > 0, `parsed data: ${JSON.stringify(result)}`);
    assert.ok(outcome.log.length > 0, 'execution.log as text/plain');
  });
});

/**
 * The OpenAPI document the API serves (/docs/json, built in process: src/control-plane/http/served-document.ts):
 * what the committed client files were generated from, what every operation promises, and what Redocly's
 * recommended rules say of it (redocly.yaml; no error allowed).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OpenAPIV3 } from 'openapi-types';
import { servedDocument } from '../../src/control-plane/http/served-document.ts';
import { ERRORS, type ErrorCode } from '../../src/shared/errors.ts';
import { documentText, GENERATED_HEADER, OPENAPI_JSON, SCHEMA_DTS, typesOf } from '../../scripts/generate-api-types.ts';
import { tempDir } from '../support/services.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head', 'trace'] as const;

type Operation = { method: string; path: string; op: OpenAPIV3.OperationObject };

function operationsOf(doc: OpenAPIV3.Document): Operation[] {
  return Object.entries(doc.paths).flatMap(([path, item]) => METHODS.flatMap((method) => {
    const op = item?.[method];
    return op ? [{ method: method.toUpperCase(), path, op }] : [];
  }));
}

const ERROR_BODY_REF = '#/components/schemas/ErrorBody';
/** Whether `schema` is ErrorBody, or all of it and more (GET /ready's 503). */
const isErrorBody = (schema: OpenAPIV3.ReferenceObject | OpenAPIV3.SchemaObject | undefined): boolean => !!schema
  && (('$ref' in schema && schema.$ref === ERROR_BODY_REF) || (!('$ref' in schema) && !!schema.allOf?.some((s) => '$ref' in s && s.$ref === ERROR_BODY_REF)));

describe('the served OpenAPI document', () => {
  let doc: OpenAPIV3.Document;
  let ops: Operation[];

  before(async () => {
    doc = await servedDocument();
    ops = operationsOf(doc);
  });

  it('is what src/web/api/openapi.json and schema.d.ts were generated from (else: npm run generate:api)', async () => {
    assert.equal(readFileSync(OPENAPI_JSON, 'utf8'), documentText(doc), 'src/web/api/openapi.json is stale: run npm run generate:api');
    const types = readFileSync(SCHEMA_DTS, 'utf8');
    assert.ok(types.startsWith(GENERATED_HEADER), 'schema.d.ts says first that it is generated, and by which command');
    assert.equal(types, await typesOf(doc), 'src/web/api/schema.d.ts is stale: run npm run generate:api');
  });

  it('has servers, the platform\'s version, described tags and security schemes', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(doc.info.version, pkg.version);
    assert.deepEqual(doc.servers, [{ url: '/', description: 'The API that serves this document' }]);
    for (const tag of doc.tags ?? []) assert.ok(tag.description, `tag ${tag.name} has a description`);
    const used = new Set(ops.flatMap(({ op }) => op.tags ?? []));
    for (const name of used) assert.ok(doc.tags?.some((t) => t.name === name), `tag ${name} is declared`);
    assert.deepEqual(Object.keys(doc.components?.securitySchemes ?? {}).sort(), ['bearerAuth', 'cookieAuth', 'metricsAuth', 'operatorAuth', 'operatorCookieAuth']);
  });

  it('names every operation with a unique camelCase operationId and says who may call it', () => {
    assert.ok(ops.length >= 38, `${ops.length} operations`);
    const ids = ops.map(({ op }) => op.operationId);
    for (const [i, id] of ids.entries()) assert.match(id ?? '', /^[a-z][A-Za-z0-9]*$/, `${ops[i]!.method} ${ops[i]!.path}`);
    assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
    for (const { method, path, op } of ops) assert.ok(Array.isArray(op.security), `${method} ${path} states its security (public ones: [])`);
    const publicOps = ops.filter(({ op }) => op.security?.length === 0).map(({ method, path }) => `${method} ${path}`).sort();
    for (const route of ['GET /health', 'GET /ready', 'POST /api/auth/register', 'POST /api/auth/login']) assert.ok(publicOps.includes(route), `${route} is public`);
  });

  it('documents a success with its body, and every error status with the shared ErrorBody', () => {
    for (const { method, path, op } of ops) {
      const where = `${method} ${path}`;
      const statuses = Object.keys(op.responses);
      assert.ok(!statuses.includes('default'), where);
      const success = statuses.filter((s) => s.startsWith('2'));
      assert.ok(success.length > 0, `${where} documents a success`);
      for (const s of success) {
        const res = op.responses[s] as OpenAPIV3.ResponseObject;
        assert.notEqual(res.description, 'Default Response', `${where} ${s} is described`);
        if (s !== '204') assert.ok(res.content && Object.values(res.content).every((m) => m.schema), `${where} ${s} has a body schema`);
      }
      for (const s of statuses.filter((x) => Number(x) >= 400)) {
        const res = op.responses[s] as OpenAPIV3.ResponseObject;
        assert.ok(isErrorBody(res.content?.['application/json']?.schema), `${where} ${s} answers ErrorBody`);
      }
      assert.ok(statuses.includes('500'), `${where} documents 500 INTERNAL`);
      if (op.security?.some((req) => 'bearerAuth' in req)) assert.ok(statuses.includes('401'), `${where} documents 401`);
      if (op.parameters?.length || op.requestBody) assert.ok(statuses.includes('400'), `${where} documents 400 VALIDATION_FAILED`);
    }
  });

  it('lists in each error status the codes it carries, all from the catalogue with that status', () => {
    for (const { method, path, op } of ops) {
      for (const [status, res] of Object.entries(op.responses).filter(([s]) => Number(s) >= 400)) {
        if (method === 'GET' && path === '/ready') continue;
        const codes = [...(res as OpenAPIV3.ResponseObject).description.matchAll(/`([A-Z_]+)`/g)].map((m) => m[1]!);
        assert.ok(codes.length > 0, `${method} ${path} ${status} names its codes`);
        for (const code of codes) assert.equal(ERRORS[code as ErrorCode]?.status, Number(status), `${method} ${path} ${status}: ${code}`);
      }
    }
    const codes = (o: string) => Object.values(ops.find(({ op }) => op.operationId === o)!.op.responses)
      .flatMap((r) => [...(r as OpenAPIV3.ResponseObject).description.matchAll(/`([A-Z_]+)`/g)].map((m) => m[1]));
    for (const code of ['NO_ACTIVE_FLOW', 'PROVIDER_NOT_CONNECTED', 'IDEMPOTENCY_CONFLICT', 'QUEUE_FULL', 'RATE_LIMITED', 'VALIDATION_FAILED', 'UNAUTHENTICATED']) {
      assert.ok(codes('runFlow').includes(code), `POST /api/run documents ${code}`);
    }
  });

  it('documents 201 for register, 202 for a run, and the log as Server-Sent Events or plain text', () => {
    const byId = (id: string) => ops.find(({ op }) => op.operationId === id)!.op;
    assert.ok(byId('register').responses['201']);
    assert.ok(byId('runFlow').responses['202']);
    const log = byId('getJobLog').responses['200'] as OpenAPIV3.ResponseObject;
    assert.deepEqual(Object.keys(log.content ?? {}).sort(), ['text/event-stream', 'text/plain']);
    for (const media of Object.values(log.content ?? {})) assert.deepEqual(media.schema && 'type' in media.schema ? media.schema.type : undefined, 'string');
  });

  describe('Redocly (recommended rules, redocly.yaml)', () => {
    const dir = tempDir('sri-openapi-');
    after(() => dir.remove());

    it('finds no error', () => {
      const file = join(dir.path, 'openapi.json');
      writeFileSync(file, documentText(doc));
      const r = spawnSync(join(ROOT, 'node_modules', '.bin', 'redocly'), ['lint', file, '--config', join(ROOT, 'redocly.yaml'), '--format=json'], {
        cwd: ROOT, encoding: 'utf8', timeout: 120_000,
        // Nothing leaves the machine: no usage report, no check for a newer version.
        env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
      });
      assert.ok(r.stdout, `redocly printed nothing (exit ${r.status}): ${r.stderr}`);
      const report = JSON.parse(r.stdout) as { totals: { errors: number; warnings: number }; problems: { ruleId: string; severity: string; message: string; location: { pointer: string }[] }[] };
      const errors = report.problems.filter((p) => p.severity === 'error').map((p) => `${p.ruleId} ${p.location[0]?.pointer}: ${p.message}`);
      assert.deepEqual(errors, []);
      assert.equal(report.totals.errors, 0);
      const warnings = report.problems.filter((p) => p.severity === 'warn').map((p) => `${p.ruleId} ${p.location[0]?.pointer}`);
      if (warnings.length) process.stdout.write(`# Redocly: ${warnings.length} warnings\n${warnings.map((w) => `#   ${w}`).join('\n')}\n`);
    });
  });
});

/**
 * The API's contract, written once: each route declares its request parts and every answer it gives as zod schemas
 * (`endpoint()` below), and those schemas are at the same time
 *   - Fastify's validator of params, query, headers and body (fastify-type-provider-zod, installed by server.ts) —
 *     a request that does not match is answered 400 VALIDATION_FAILED with details naming each field (errors.ts);
 *   - the handler's types (ZodTypeProvider: `req.body` is the schema's output, `reply.send` takes the documented
 *     answer of the status set);
 *   - the serializer of its successful JSON answers (`contractSerializer`): what leaves the API is what is documented;
 *   - the OpenAPI document served at /docs/json (@fastify/swagger with `contractTransform` / `contractDocument`), from
 *     which the dashboard's client types are generated (`npm run generate:api`, src/web/api/schema.d.ts).
 *
 * Error answers are not declared one by one: `endpoint()` adds the statuses a route can answer from what it is —
 * authentication, a body, parameters — plus the codes its handler throws (`errors`), each documented with the one
 * shared `ErrorBody` component and the codes it may carry (docs/errors.md).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifySchema, FastifySchemaCompiler, FastifySerializerCompiler, FastifyTypeProvider, HTTPMethods } from 'fastify';
import type { SwaggerTransform, SwaggerTransformObject } from '@fastify/swagger';
import { createJsonSchemaTransform, createJsonSchemaTransformObject, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { OpenAPIV3 } from 'openapi-types';
import { z } from 'zod';
import { ERROR_CODES, ERRORS, type ErrorCode } from '../../shared/errors.ts';
import { OPERATOR_SESSION_COOKIE, SESSION_COOKIE } from './session-cookie.ts';

// ── The shared error body ─────────────────────────────────────────────────────────────────────────────────────────

function nonEmpty<T>(items: readonly T[]): [T, ...T[]] {
  const [first, ...rest] = items;
  if (first === undefined) throw new Error('empty list');
  return [first, ...rest];
}

/** One problem of a request that failed validation (`details` of VALIDATION_FAILED). */
export const ValidationIssue = z.object({
  field: z.string().describe('The field, as a dotted path within its part of the request (`(root)` for the part itself), e.g. `steps.0.selector`.'),
  message: z.string(),
  in: z.enum(['body', 'querystring', 'params', 'headers']).optional().describe('The part of the request the field is in; absent when the handler found the problem.'),
}).meta({ id: 'ValidationIssue' });

/**
 * Every error answer of the API, whatever the status (errors.ts renders it; src/shared/errors.ts holds the codes).
 * The code's type is the catalogue's: no error leaves the API with a code that is not in it.
 */
export const ErrorBody = z.object({
  error: z.object({
    code: z.enum(nonEmpty(ERROR_CODES)).describe('A stable code from docs/errors.md: match on it, never on the message.'),
    message: z.string().describe('What happened and what to do next.'),
    details: z.union([z.array(ValidationIssue), z.record(z.string(), z.unknown())]).optional()
      .describe('VALIDATION_FAILED: a list of ValidationIssue. Other codes, when they have details: an object the code\'s entry in docs/errors.md describes.'),
  }),
}).meta({ id: 'ErrorBody', description: 'The error answer of every endpoint: `{ error: { code, message, details? } }`.' });
export type ErrorBody = z.infer<typeof ErrorBody>;

// ── Endpoints ─────────────────────────────────────────────────────────────────────────────────────────────────────

/** Tags of the document, in the order the UI shows them. */
export const TAGS = {
  auth: 'Registration, login and the caller\'s identity (tokens for "Authorization: Bearer").',
  session: 'The dashboard\'s browser session: an HttpOnly cookie instead of a token, with a CSRF token for writes.',
  members: 'The organisation\'s members (its admins manage them): add with a password or an invitation link, change a role, remove.',
  providers: 'The provider catalogue, and the caller\'s portal sessions (cookies, credentials) for each provider.',
  flows: 'Flows: browser automations written as steps, compiled into a signed script; one active flow per provider.',
  jobs: 'Runs of a provider\'s active flow: status, result, evidence (artifacts), live log, cancel and retry.',
  documents: 'The SRI\'s electronic documents the organisation\'s jobs fetched, one record per access key: list, totals, the authorised XML, exports.',
  schedules: 'Schedules: runs that start by themselves at the due times of a cron pattern in a time zone, one run per due time.',
  secrets: 'The organisation\'s secrets (encrypted, never readable back), filled into portals by flows.',
  webhooks: 'Webhooks: job results POSTed, signed, to the organisation\'s own receivers.',
  admin: 'Administration of the organisation (its admins only): dead letters, queue quotas, the workers serving it.',
  operator: 'The platform operator\'s endpoints (OPERATOR_TOKEN): enrolling and revoking workers, provider limits, publishing module bundles.',
  health: 'Liveness, readiness and metrics of the API process.',
} as const;
export type Tag = keyof typeof TAGS;

/**
 * Who may call an endpoint:
 * - `public`: anyone (`security: []`);
 * - `user`: a user's token ("Authorization: Bearer", or the dashboard's session cookie with its CSRF token on writes);
 * - `admin`: the same, for the organisation's admins only (FORBIDDEN otherwise);
 * - `operator`: the platform operator's OPERATOR_TOKEN;
 * - `metrics`: METRICS_TOKEN when the API has one set, else anyone.
 */
export type Access = 'public' | 'user' | 'admin' | 'operator' | 'metrics';

/** An answer with a body, one schema per media type. */
export interface ContentResponse {
  description: string;
  content: Record<string, { schema: z.ZodType }>;
}
/** An answer without a body (204): `noContent()`. */
export type NoContentResponse = z.ZodUndefined;

/** A JSON answer. */
export function json<T extends z.ZodType>(description: string, schema: T): { description: string; content: { 'application/json': { schema: T } } } {
  return { description, content: { 'application/json': { schema } } };
}

/** An answer without a body. */
export function noContent(description: string): NoContentResponse {
  return z.undefined().describe(description);
}

export interface EndpointSpec {
  /** camelCase, stable: the generated client's name of the operation. */
  operationId: string;
  summary: string;
  description?: string;
  tag: Tag;
  access: Access;
  body?: z.ZodType;
  params?: z.ZodType;
  querystring?: z.ZodType;
  headers?: z.ZodType;
  /** Every answer the handler itself sends, by status (errors it throws go in `errors`). */
  responses: Record<number, ContentResponse | NoContentResponse>;
  /** Codes the handler (or a hook of the route) throws, besides those `endpoint()` adds from `access` and the request parts. */
  errors?: readonly ErrorCode[];
  /** False for the routes that answer without PostgreSQL, Redis or S3 (no SERVICE_UNAVAILABLE). @default true */
  backends?: boolean;
}

/** The route schema `endpoint()` makes: what Fastify validates and serializes with, and what the document shows. */
export interface EndpointSchema<S extends EndpointSpec> extends FastifySchema {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  security: OpenAPIV3.SecurityRequirementObject[];
  body: S['body'];
  params: S['params'];
  querystring: S['querystring'];
  headers: S['headers'];
  /** The declared answers (typed: they are what `reply.send` accepts), plus the error statuses (ErrorBody). */
  response: S['responses'];
}

const UNSAFE_METHODS: readonly HTTPMethods[] = ['POST', 'PUT', 'PATCH', 'DELETE'];

const SECURITY: Record<Access, OpenAPIV3.SecurityRequirementObject[]> = {
  public: [],
  user: [{ bearerAuth: [] }, { cookieAuth: [] }],
  admin: [{ bearerAuth: [] }, { cookieAuth: [] }],
  operator: [{ operatorAuth: [] }, { operatorCookieAuth: [] }],
  // `{}`: no credential is an alternative too (the API without METRICS_TOKEN).
  metrics: [{ metricsAuth: [] }, {}],
};

/** The error codes an endpoint can answer, from what it is. */
export function errorCodesOf(method: HTTPMethods, spec: Pick<EndpointSpec, 'access' | 'body' | 'params' | 'querystring' | 'headers' | 'errors' | 'backends'>): ErrorCode[] {
  const codes = new Set<ErrorCode>(spec.errors ?? []);
  if (spec.access === 'user' || spec.access === 'admin') {
    codes.add('UNAUTHENTICATED').add('TOKEN_INVALID');
    // The session cookie authenticates state-changing requests only with its CSRF token.
    if (UNSAFE_METHODS.includes(method)) codes.add('CSRF_TOKEN_INVALID');
  }
  if (spec.access === 'admin') codes.add('FORBIDDEN');
  if (spec.access === 'operator') {
    codes.add('OPERATOR_ONLY');
    // The operator's dashboard session (auth/operator-session.ts) needs its CSRF token on these too.
    if (UNSAFE_METHODS.includes(method)) codes.add('CSRF_TOKEN_INVALID');
  }
  if (spec.access === 'metrics') codes.add('UNAUTHENTICATED');
  if (spec.body || spec.params || spec.querystring || spec.headers) codes.add('VALIDATION_FAILED');
  if (spec.body) codes.add('MALFORMED_BODY').add('PAYLOAD_TOO_LARGE').add('UNSUPPORTED_MEDIA_TYPE');
  if (spec.backends !== false) codes.add('SERVICE_UNAVAILABLE');
  codes.add('INTERNAL');
  return [...codes];
}

/** The error statuses of `codes`, each documented with ErrorBody and the codes it carries. */
export function errorResponses(codes: readonly ErrorCode[]): Record<number, ContentResponse> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) {
    const status = ERRORS[code].status;
    if (status < 400) throw new Error(`${code} is not an HTTP error (status ${status})`);
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return Object.fromEntries([...byStatus].sort(([a], [b]) => a - b).map(([status, list]) => [
    status, json(list.map((c) => `\`${c}\`: ${ERRORS[c].message}`).join('\n\n'), ErrorBody),
  ]));
}

/**
 * The options of a route's endpoint: `app.route({ ...endpoint('POST', '/api/run', {...}), preValidation, handler })`.
 * Authentication hooks go in `preValidation`, so an unauthenticated request is answered 401 before its body is
 * judged (as it was when handlers parsed their own bodies).
 */
export function endpoint<const S extends EndpointSpec>(method: HTTPMethods, url: string, spec: S): { method: HTTPMethods; url: string; schema: EndpointSchema<S> } {
  const parts = Object.fromEntries((['body', 'params', 'querystring', 'headers'] as const)
    .flatMap((k) => (spec[k] === undefined ? [] : [[k, spec[k]]])));
  const schema = {
    operationId: spec.operationId,
    summary: spec.summary,
    ...(spec.description === undefined ? {} : { description: spec.description }),
    tags: [spec.tag],
    security: SECURITY[spec.access],
    ...parts,
    response: { ...errorResponses(errorCodesOf(method, spec)), ...spec.responses },
  };
  // The parts present are exactly those of S (an absent one is left out rather than set to undefined, which Fastify
  // would warn about): the object has the shape EndpointSchema<S> describes.
  return { method, url, schema: schema as EndpointSchema<S> };
}

/**
 * The routes' type provider: fastify-type-provider-zod's, and also for answers declared with their media types
 * (`json()`, the log's text): `reply.status(202).send(x)` checks `x` against the answer documented for 202 (the zod
 * provider alone types only bare schemas there, and lets anything through for `{ description, content }`).
 */
export interface ContractTypeProvider extends FastifyTypeProvider {
  validator: this['schema'] extends z.ZodType ? z.output<this['schema']> : unknown;
  serializer: this['schema'] extends z.ZodType ? z.output<this['schema']>
    : this['schema'] extends { content: infer C } ? { [K in keyof C]: C[K] extends { schema: infer S extends z.ZodType } ? z.output<S> : unknown }[keyof C]
    : unknown;
}

// ── Validation and serialization ──────────────────────────────────────────────────────────────────────────────────

/**
 * fastify-type-provider-zod's validator, except that a request without a body is validated as `{}`: Fastify hands
 * the validator `null` then, and `POST /api/flows/{id}/activate` or `POST /api/operator/worker-enrolments` without a
 * body (or with Content-Type: application/json and an empty one, server.ts) must keep working. Its errors become
 * VALIDATION_FAILED in errors.ts.
 */
export const contractValidator: FastifySchemaCompiler<z.ZodType> = (route) => {
  const validate = validatorCompiler(route);
  return route.httpPart === 'body' ? (data) => validate(data ?? {}) : validate;
};

/**
 * Successful JSON answers are encoded with their route's zod schema (fastify-type-provider-zod): a field the schema
 * does not name is dropped and an answer that breaks it fails as INTERNAL (logged with the issues) rather than
 * leaving the API undocumented. Error answers (4xx, 5xx) are built by the one error handler from the catalogue and
 * sent as they are.
 */
export const contractSerializer: FastifySerializerCompiler<z.ZodType | { properties: z.ZodType }> = (route) => {
  if (Number(route.httpStatus) >= 400 || String(route.httpStatus).toLowerCase() === 'default') return (data) => JSON.stringify(data);
  return serializerCompiler(route);
};

// ── The document ──────────────────────────────────────────────────────────────────────────────────────────────────

/** The platform's version (package.json), found upwards from this file: the sources' or the build's (dist/ has none of its own). */
export function apiVersion(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'sri-automation-platform' && typeof pkg.version === 'string') return pkg.version;
    }
    if (dirname(dir) === dir) return '0.0.0';
  }
}

const DESCRIPTION = `The control plane of the SRI automation platform: register an organisation, connect a provider with your portal
session, create and activate a flow, run it, and read the job's status, result, evidence and log.

Errors always come back as \`{ "error": { "code", "message", "details"? } }\` (the ErrorBody schema); every code, its
status and what to do about it is in docs/errors.md. Requests that do not match an operation's schema are answered
400 \`VALIDATION_FAILED\` with \`details\` naming each field.`;

/** The fixed parts of the document (info, servers, tags, security schemes); paths come from the routes. */
export function documentBase(): Partial<OpenAPIV3.Document> {
  return {
    openapi: '3.0.3',
    info: { title: 'SRI automation platform — control plane API', version: apiVersion(), description: DESCRIPTION },
    // Relative: the document is right wherever the API is served (behind a proxy, on any port).
    servers: [{ url: '/', description: 'The API that serves this document' }],
    tags: Object.entries(TAGS).map(([name, description]) => ({ name, description })),
    components: {
      securitySchemes: {
        bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A token from POST /api/auth/register or /api/auth/login (they expire; log in again).' },
        cookieAuth: { type: 'apiKey', in: 'cookie', name: SESSION_COOKIE, description: `The dashboard's HttpOnly session cookie (POST /api/session); state-changing requests also send the x-csrf-token header.` },
        operatorAuth: { type: 'http', scheme: 'bearer', description: 'The platform operator\'s OPERATOR_TOKEN (an API setting).' },
        operatorCookieAuth: { type: 'apiKey', in: 'cookie', name: OPERATOR_SESSION_COOKIE, description: 'The operator\'s HttpOnly dashboard session (POST /api/operator/session); state-changing requests also send the x-csrf-token header (the sri_operator_csrf cookie).' },
        metricsAuth: { type: 'http', scheme: 'bearer', description: 'METRICS_TOKEN, when the API has one set.' },
      },
    },
  };
}

/** camelCase of method and path, for routes that name no operationId: `GET /api/jobs/:id/logs` → `getApiJobsByIdLogs`. */
export function derivedOperationId(method: string, url: string): string {
  const words = url.split('/').filter(Boolean).map((seg) => (seg.startsWith(':') ? `by-${seg.slice(1)}` : seg))
    .flatMap((seg) => seg.split(/[^A-Za-z0-9]+/)).filter(Boolean);
  return method.toLowerCase() + words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
}

const zodTransform = createJsonSchemaTransform({});
const zodTransformObject = createJsonSchemaTransformObject({});

/** Each route's zod schemas to JSON Schema, and an operationId for every operation. */
export const contractTransform: SwaggerTransform = (input) => {
  const out = zodTransform(input);
  const schema = out.schema as FastifySchema & { operationId?: string; hide?: boolean };
  if (!schema.hide && !schema.operationId) {
    const method = Array.isArray(input.route.method) ? input.route.method[0]! : input.route.method;
    return { ...out, schema: { ...schema, operationId: derivedOperationId(method, input.url) } };
  }
  return out;
};

/** The names of the components `value` refers to (`#/components/schemas/X`). */
function refsIn(value: unknown, found: Set<string>): void {
  if (Array.isArray(value)) {
    for (const v of value) refsIn(v, found);
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/')) found.add(v.slice('#/components/schemas/'.length));
      else refsIn(v, found);
    }
  }
}

/**
 * The whole document: the registered zod schemas (`.meta({ id })`) as components — only those the operations use,
 * followed through the components themselves — and request bodies that may be left out marked so.
 */
export const contractDocument: SwaggerTransformObject = (input) => {
  const doc = zodTransformObject(input) as OpenAPIV3.Document;
  const schemas = doc.components?.schemas ?? {};
  const used = new Set<string>();
  refsIn(doc.paths, used);
  for (let grew = true; grew;) {
    const before = used.size;
    for (const name of [...used]) refsIn(schemas[name], used);
    grew = used.size > before;
  }
  const kept = Object.fromEntries(Object.entries(schemas).filter(([name]) => used.has(name)).sort(([a], [b]) => a.localeCompare(b)));
  for (const item of Object.values(doc.paths ?? {})) {
    for (const op of Object.values(item ?? {})) {
      const body = (op as OpenAPIV3.OperationObject | undefined)?.requestBody;
      if (!body || '$ref' in body) continue;
      // An absent body is validated as {} (contractValidator), so a body whose fields are all optional may be left out.
      const media = body.content['application/json']?.schema;
      if (media && !('$ref' in media) && media.type === 'object' && !(media.required?.length)) body.required = false;
    }
  }
  return { ...doc, components: { ...doc.components, schemas: kept } };
};

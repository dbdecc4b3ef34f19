/**
 * The one error handler: every failure leaves the API as `{ error: { code, message, details? } }` with a code from
 * src/shared/errors.ts. Unexpected errors are logged with the request id and answered with INTERNAL — no stack,
 * no SQL, no driver message reaches the client.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { ZodError } from 'zod';
import { ERRORS, SriError, isSriError, type ErrorCode } from '../../shared/errors.ts';

export function errorBody(code: ErrorCode, message?: string, details?: unknown) {
  return { error: { code, message: message ?? ERRORS[code].message, ...(details === undefined ? {} : { details }) } };
}

/** Fastify's own request errors, by their stable codes. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'MALFORMED_BODY',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'MALFORMED_BODY',
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'MALFORMED_BODY',
};

/**
 * A backing service that cannot be reached (socket errors from pg, ioredis giving up or finding its connection
 * closed, the AWS SDK's network errors): retryable 503, not a bug.
 */
function isBackendUnreachable(err: unknown): boolean {
  const e = err as { code?: string; name?: string; message?: string } | undefined;
  if (!e) return false;
  if (e.code && ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', '57P01', '57P03', '08006', '08001'].includes(e.code)) return true;
  if (e.name === 'MaxRetriesPerRequestError') return true;
  return /^(Connection is closed|Command timed out|Connection terminated|Stream isn't writeable)/.test(e.message ?? '');
}

/** `/steps/0/selector` (the validator's JSON pointer) → `steps.0.selector`; the part itself → `(root)`. */
function fieldOf(instancePath: string): string {
  const path = instancePath.split('/').filter(Boolean).join('.');
  return path === '' ? '(root)' : path;
}

export function toSriError(err: unknown): SriError | undefined {
  if (isSriError(err)) return err;
  // A request part that does not match its route's schema (openapi.ts contractValidator): the same answer as a
  // handler's own zod parse below, with the part named.
  if (hasZodFastifySchemaValidationErrors(err)) {
    return new SriError('VALIDATION_FAILED', undefined, {
      details: err.validation.map((v) => ({ field: fieldOf(v.instancePath), message: v.message ?? 'is not valid', ...(err.validationContext ? { in: err.validationContext } : {}) })),
    });
  }
  if (err instanceof ZodError) {
    return new SriError('VALIDATION_FAILED', undefined, {
      details: err.issues.map((i) => ({ field: i.path.length ? i.path.join('.') : '(root)', message: i.message })),
    });
  }
  const fe = err as Partial<FastifyError> | undefined;
  const mapped = fe?.code ? FASTIFY_CODES[fe.code] : undefined;
  if (mapped) return new SriError(mapped, mapped === 'MALFORMED_BODY' && fe?.code === 'FST_ERR_CTP_EMPTY_JSON_BODY'
    ? 'The body is empty but Content-Type is application/json; send a JSON object or no Content-Type.' : undefined);
  if (err instanceof SyntaxError && (fe?.statusCode === 400)) return new SriError('MALFORMED_BODY');
  if (isBackendUnreachable(err)) return new SriError('SERVICE_UNAVAILABLE', undefined, { cause: err });
  if (fe?.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) return new SriError('VALIDATION_FAILED', fe.message);
  return undefined;
}

export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const known = toSriError(err);
    if (known) {
      if (known.status >= 500) req.log.error({ err: known.cause ?? known, code: known.code }, 'request failed');
      // Errors that know when to try again (the run limits, jobs/admission.ts) say it the HTTP way too.
      const retryAfter = (known.details as { retryAfterSeconds?: unknown } | undefined)?.retryAfterSeconds;
      if (typeof retryAfter === 'number' && !reply.hasHeader('retry-after')) reply.header('retry-after', String(retryAfter));
      return reply.status(known.status).send(errorBody(known.code, known.message, known.details));
    }
    if ((err as Partial<FastifyError> | undefined)?.code === 'FST_ERR_RESPONSE_SERIALIZATION') {
      // An answer that breaks its route's documented schema (openapi.ts contractSerializer): a bug of the route.
      req.log.error({ err, issues: (err as { cause?: ZodError }).cause?.issues, route: req.routeOptions.url }, 'answer does not match its documented schema');
    } else {
      req.log.error({ err }, 'unexpected error');
    }
    return reply.status(500).send(errorBody('INTERNAL', `Unexpected error; it has been logged with request id ${req.id}.`));
  });
  app.setNotFoundHandler((req, reply) => {
    reply.status(404).send(errorBody('ROUTE_NOT_FOUND', `No endpoint ${req.method} ${req.url.split('?')[0]}; see /docs for the API.`));
  });
}

/**
 * The dashboard's one way to the API: openapi-fetch over the types generated from the OpenAPI description the API
 * serves (`npm run generate:api` writes schema.d.ts), so a changed endpoint breaks the app's type check.
 *
 * Requests go to the page's own origin with the HttpOnly session cookie (never a token the page holds); every
 * state-changing request carries the session's CSRF token, read from the `sri_csrf` cookie (`sri_operator_csrf` for the
 * operator's endpoints). A 401 from any endpoint but the session's own means the session ended (expired, logged out
 * elsewhere, member removed): the app is told, and sends the user to log in (session/session.tsx).
 */
import createClient, { type Middleware } from 'openapi-fetch';
import type { paths } from './schema.d.ts';

export type { paths };

const CSRF_COOKIE = 'sri_csrf';
/** The platform operator's session has a CSRF cookie of its own (session/operator-session.tsx), for /api/operator. */
const OPERATOR_CSRF_COOKIE = 'sri_operator_csrf';
const CSRF_HEADER = 'x-csrf-token';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function readCookie(name: string): string | undefined {
  for (const part of document.cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

/** An error answer of the API: `{ error: { code, message, details? } }`, or a network failure (status 0). */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly details?: unknown) {
    super(message);
    this.name = 'ApiError';
  }
}

export function toApiError(status: number, body: unknown): ApiError {
  const e = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error;
  if (e && typeof e.code === 'string') return new ApiError(status, e.code, typeof e.message === 'string' ? e.message : e.code, e.details);
  return new ApiError(status, status === 0 ? 'NETWORK' : 'HTTP_ERROR', `HTTP ${status}`);
}

let sessionEnded: (() => void) | undefined;
/** Who is told when the API answers 401 (the session provider). */
export function onSessionEnded(handler: (() => void) | undefined): void {
  sessionEnded = handler;
}

const middleware: Middleware = {
  onRequest({ request }) {
    if (!SAFE_METHODS.has(request.method)) {
      const token = readCookie(new URL(request.url).pathname.startsWith('/api/operator/') ? OPERATOR_CSRF_COOKIE : CSRF_COOKIE);
      if (token) request.headers.set(CSRF_HEADER, token);
    }
    return request;
  },
  onResponse({ request, response }) {
    if (response.status === 401 && !new URL(request.url).pathname.startsWith('/api/session')) sessionEnded?.();
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: window.location.origin, credentials: 'same-origin' });
api.use(middleware);

/** The data of a successful answer; an ApiError otherwise (network failures included). */
export async function ok<R extends { data?: unknown; error?: unknown; response: Response }>(call: Promise<R>): Promise<NonNullable<R['data']>> {
  let r: R;
  try {
    r = await call;
  } catch (e) {
    throw new ApiError(0, 'NETWORK', (e as Error).message);
  }
  if (r.error !== undefined) throw toApiError(r.response.status, r.error);
  // openapi-fetch sets `data` whenever `error` is undefined — undefined itself only for a 204, which nobody reads;
  // its union type cannot say so.
  return r.data as NonNullable<R['data']>;
}

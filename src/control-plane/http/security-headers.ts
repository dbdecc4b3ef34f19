/**
 * Security headers on every response of the API (docs/security.md "API hardening"). They are set on the raw
 * response when the request arrives, so they reach hijacked responses too (the live-log event stream); a header a
 * route sets itself wins (Node merges, writeHead's own headers taking precedence) — the OpenAPI UI under /docs sets
 * the looser Content-Security-Policy its page needs (swagger-ui `staticCSP`).
 */
import type { FastifyInstance } from 'fastify';

/** The API serves JSON and event streams, never a page: nothing may be loaded, framed or sniffed. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  // Ignored by browsers over plain HTTP; effective once a TLS terminator serves the API over HTTPS.
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=()',
});

export function installSecurityHeaders(app: FastifyInstance): void {
  app.addHook('onRequest', async (req, reply) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) reply.raw.setHeader(name, value);
    // Answers carry tokens, job data and presigned links: no shared or browser cache keeps them.
    if (req.url.startsWith('/api/')) reply.raw.setHeader('cache-control', 'no-store');
  });
}

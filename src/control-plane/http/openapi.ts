/**
 * OpenAPI description generated from the same zod schemas the handlers parse with. Fastify's own validation is
 * switched off (server.ts), so these JSON schemas are documentation only and zod stays the one validator.
 */
import { z } from 'zod';
import type { FastifySchema } from 'fastify';

const toJson = (s: z.ZodType) => z.toJSONSchema(s, { target: 'openapi-3.0', io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;

export interface RouteDoc {
  summary: string;
  tags: string[];
  body?: z.ZodType;
  params?: z.ZodType;
  query?: z.ZodType;
  headers?: z.ZodType;
  /** Needs "Authorization: Bearer <token>". @default true */
  auth?: boolean;
}

export function doc(d: RouteDoc): FastifySchema & Record<string, unknown> {
  return {
    summary: d.summary,
    tags: d.tags,
    ...(d.body ? { body: toJson(d.body) } : {}),
    ...(d.params ? { params: toJson(d.params) } : {}),
    ...(d.query ? { querystring: toJson(d.query) } : {}),
    ...(d.headers ? { headers: toJson(d.headers) } : {}),
    ...(d.auth === false ? {} : { security: [{ bearerAuth: [] }] }),
  };
}

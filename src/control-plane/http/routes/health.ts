/** Liveness (the process answers) and readiness (PostgreSQL, Redis and S3 answer within a deadline). */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ApiContext } from '../../context.ts';
import { endpoint, ErrorBody, json, type ContractTypeProvider } from '../openapi.ts';

/** Each backing service: `ok`, or `fail: <error class> <short message>`. */
const Checks = z.object({ postgres: z.string(), redis: z.string(), s3: z.string() });

const CHECK_TIMEOUT_MS = 3000;

async function probe(fn: () => Promise<unknown>): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS); }),
    ]);
    return 'ok';
  } catch (e) {
    // Only the error's class and short message: a driver message is enough to act on and holds no secrets.
    const err = e as { name?: string; message?: string };
    return `fail: ${err.name ?? 'Error'}${err.message ? ` ${err.message.slice(0, 120)}` : ''}`;
  } finally {
    clearTimeout(timer);
  }
}

export function healthRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ContractTypeProvider>();

  r.route({
    ...endpoint('GET', '/health', {
      operationId: 'getHealth', tag: 'health', access: 'public', backends: false, summary: 'Liveness: the process answers.',
      responses: { 200: json('Alive.', z.object({ status: z.literal('ok') })) },
    }),
    handler: async () => ({ status: 'ok' as const }),
  });

  r.route({
    ...endpoint('GET', '/ready', {
      operationId: 'getReady', tag: 'health', access: 'public', summary: 'Readiness: PostgreSQL, Redis and S3 reachable.',
      responses: {
        200: json('Ready: every backing service answered.', z.object({ status: z.literal('ready'), checks: Checks })),
        503: json('`SERVICE_UNAVAILABLE`: a backing service did not answer within 3 s; `details.failing` names them.',
          z.intersection(ErrorBody, z.object({ status: z.literal('unavailable'), checks: Checks }))),
      },
    }),
    handler: async (_req, reply) => {
      const [postgres, redis, s3] = await Promise.all([
        probe(() => ctx.db.ping()),
        probe(() => ctx.redis.ping()),
        probe(() => ctx.blobStore.ping(ctx.config.s3ScriptsBucket)),
      ]);
      const checks = { postgres, redis, s3 };
      const failing = Object.entries(checks).filter(([, v]) => v !== 'ok').map(([k]) => k);
      if (failing.length === 0) return reply.status(200).send({ status: 'ready', checks });
      return reply.status(503).send({
        status: 'unavailable', checks,
        error: { code: 'SERVICE_UNAVAILABLE', message: `Not ready: ${failing.join(', ')} unreachable.`, details: { failing } },
      });
    },
  });
}

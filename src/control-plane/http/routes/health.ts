/** Liveness (the process answers) and readiness (PostgreSQL, Redis and S3 answer within a deadline). */
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../context.ts';
import { doc } from '../openapi.ts';

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
  app.get('/health', { schema: doc({ summary: 'Liveness.', tags: ['health'], auth: false }) }, async () => ({ status: 'ok' }));

  app.get('/ready', { schema: doc({ summary: 'Readiness: PostgreSQL, Redis and S3 reachable.', tags: ['health'], auth: false }) }, async (_req, reply) => {
    const [postgres, redis, s3] = await Promise.all([
      probe(() => ctx.db.ping()),
      probe(() => ctx.redis.ping()),
      probe(() => ctx.blobStore.ping(ctx.config.s3ScriptsBucket)),
    ]);
    const checks = { postgres, redis, s3 };
    const failing = Object.entries(checks).filter(([, v]) => v !== 'ok').map(([k]) => k);
    if (failing.length === 0) return { status: 'ready', checks };
    return reply.status(503).send({
      status: 'unavailable', checks,
      error: { code: 'SERVICE_UNAVAILABLE', message: `Not ready: ${failing.join(', ')} unreachable.`, details: { failing } },
    });
  });
}

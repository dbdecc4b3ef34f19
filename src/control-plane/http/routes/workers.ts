/**
 * GET /api/workers: the worker registry (src/shared/worker-registry.ts) — every worker with its last heartbeat,
 * state (ready, busy, reconnecting, draining, lost), resource usage, stats and jobs in flight. Workers are shared by
 * every organisation, so an organisation's admin sees how many jobs each one runs but the ids of its own jobs only
 * (ARCHITECTURE.md invariant 7), and not where workers run (host, pid, metrics URL: operators see those with
 * `sri workers`). Admins only.
 */
import type { FastifyInstance } from 'fastify';
import { listWorkers } from '../../../shared/worker-registry.ts';
import type { ApiContext } from '../../context.ts';
import { adminOnly } from '../admin-guard.ts';
import { authOf } from '../auth.ts';
import { doc } from '../openapi.ts';

export function workerRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/api/workers', {
    preHandler: adminOnly(ctx),
    schema: doc({
      summary: 'Every worker with last heartbeat, state (ready, busy, reconnecting, draining, lost), resource usage, stats and jobs in flight; job ids of your organisation only (admins only).',
      tags: ['admin'],
    }),
  }, async (req) => {
    const { orgId } = authOf(req);
    const list = await listWorkers(ctx.redis);
    return {
      workers: list.workers.map(({ host: _host, pid: _pid, httpUrl: _httpUrl, ...w }) => ({ ...w, jobs: w.jobs.filter((j) => j.orgId === orgId) })),
      counts: list.counts,
    };
  });
}

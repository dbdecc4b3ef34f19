/**
 * GET /api/workers: the worker registry (src/shared/worker-registry.ts) — every worker with its last heartbeat,
 * state (ready, busy, reconnecting, draining, lost), capacity and resource usage, and the caller's jobs in flight.
 * Workers are shared by every organisation, so what an organisation's admin sees says nothing about other
 * organisations' jobs (ARCHITECTURE.md invariant 7; docs/observability.md "GET /api/workers"): `jobs` and
 * `jobsInFlight` count the caller's jobs only, `busy` means busy with them (a worker running only other
 * organisations' jobs shows `ready`, and `counts` follow), and the worker's job totals (`stats`, every organisation's
 * jobs) are left out — as is where workers run (host, pid, metrics URL). How a worker isolates scripts (`sandbox`) is
 * shown: it is about the admin's own scripts, and says nothing of other organisations or of where the worker runs.
 * Operators see all of it with `sri workers`. Admins only.
 */
import type { FastifyInstance } from 'fastify';
import { listWorkers, type RegistryWorkerState, type ReportedWorkerState, type WorkerList, type WorkerListing } from '../../../shared/worker-registry.ts';
import type { ApiContext } from '../../context.ts';
import { adminOnly } from '../admin-guard.ts';
import { authOf } from '../auth.ts';
import { endpoint, json, type ContractTypeProvider } from '../openapi.ts';
import { WorkerList as WorkerListAnswer } from '../schemas.ts';

/** A worker as the admins of `orgId` see it. */
export type OrgWorkerListing = Omit<WorkerListing, 'host' | 'pid' | 'httpUrl' | 'stats'>;

/** `busy` and `ready` as seen by an organisation: busy with its own jobs, or not. */
function ownState<S extends RegistryWorkerState | ReportedWorkerState | null>(state: S, ownJobs: number): S | 'busy' | 'ready' {
  return state === 'busy' || state === 'ready' ? (ownJobs > 0 ? 'busy' : 'ready') : state;
}

/** The registry with nothing of other organisations' jobs in it (see the top of this file). */
export function workersForOrg(list: Pick<WorkerList, 'workers' | 'counts'>, orgId: string): { workers: OrgWorkerListing[]; counts: WorkerList['counts'] } {
  const counts = Object.fromEntries(Object.keys(list.counts).map((s) => [s, 0])) as WorkerList['counts'];
  const workers = list.workers.map(({ host: _host, pid: _pid, httpUrl: _httpUrl, stats: _stats, ...w }): OrgWorkerListing => {
    const jobs = w.jobs.filter((j) => j.orgId === orgId);
    const state = ownState(w.state, jobs.length);
    counts[state]++;
    return { ...w, state, reportedState: ownState(w.reportedState, jobs.length), jobsInFlight: jobs.length, jobs };
  });
  return { workers, counts };
}

export function workerRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.withTypeProvider<ContractTypeProvider>().route({
    ...endpoint('GET', '/api/workers', {
      operationId: 'listWorkers', tag: 'admin', access: 'admin',
      summary: 'Every worker with last heartbeat, state (ready, busy, reconnecting, draining, lost), capacity, resource usage, script sandbox and your organisation\'s jobs in flight; nothing of other organisations\' jobs (admins only).',
      responses: { 200: json('The workers, and how many are in each state.', WorkerListAnswer) },
    }),
    preValidation: adminOnly(ctx),
    handler: async (req) => {
      const { orgId } = authOf(req);
      return workersForOrg(await listWorkers(ctx.redis), orgId);
    },
  });
}

/**
 * `sri demo-sri`: the SRI pack against the demo portal's imitation of the SRI (docs/sri.md "Run the SRI pack"), over
 * HTTP only, against a running stack — register, connect the `sri` provider with the imitation's demo login as
 * credentials, create and activate the "comprobantes recibidos" flow from its template, run it for a month and a
 * type of document, wait for the job, and print what the documents table now holds for that month and type (count,
 * totals). test/e2e/sri-pack.test.ts drives the same function.
 */
import { randomBytes } from 'node:crypto';
import { SRI_DEMO_PASSWORD, SRI_DEMO_RUC } from '../embedded/sri-portal/index.ts';
import { SRI_SECRETS, SRI_TYPE_CODES, sriComprobantesRecibidosFlow } from '../control-plane/flows/templates/sri-comprobantes-recibidos.ts';
import { ApiClient } from './api-client.ts';
import { waitForJob, type DemoJob } from './demo.ts';

export type SriDemoType = keyof typeof SRI_TYPE_CODES;
export const SRI_DEMO_TYPES = Object.keys(SRI_TYPE_CODES) as SriDemoType[];

export interface SriDemoOptions {
  apiUrl: string;
  portalUrl: string;
  year: number;
  month: number;
  type: SriDemoType;
  /** @default 600000: a month of documents is a few hundred page round trips on a busy machine */
  jobTimeoutMs?: number;
  print?: (line: string) => void;
  waiting?: (text: string) => void;
}

export interface SriDemoOutcome {
  jobId: string;
  job: DemoJob;
  documents: { total: number; totals: Record<string, unknown> };
}

export async function runSriDemo(o: SriDemoOptions): Promise<SriDemoOutcome> {
  const print = o.print ?? ((l: string) => console.log(l));
  let lastWait: string | undefined;
  const waiting = o.waiting ?? ((text: string) => { if (text !== lastWait) print(`   ${text}`); lastWait = text; });
  const api = new ApiClient(o.apiUrl, { onRetry: (what) => waiting(`${what}; trying again`) });
  const suffix = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

  const reg = await api.request<{ token: string; user: { email: string }; org: { id: string; name: string } }>('POST', '/api/auth/register', {
    email: `sri-demo-${suffix}@example.com`, password: `Sri-${randomBytes(6).toString('hex')}-2026`, name: 'Contadora demo', orgName: `SRI demo ${suffix}`,
  });
  api.token = reg.body.token;
  print(`1. registered ${reg.body.user.email} in organisation ${reg.body.org.name} (${reg.body.org.id})`);

  await api.request('POST', '/api/providers/sri/connect', {
    cookies: [], credentials: { [SRI_SECRETS.user]: SRI_DEMO_RUC, [SRI_SECRETS.password]: SRI_DEMO_PASSWORD },
  });
  print(`2. connected provider sri with the imitation's demo login (RUC ${SRI_DEMO_RUC}); the flow signs in with it`);

  const flow = await api.request<{ flow: { id: string; scriptHash: string } }>('POST', '/api/flows', sriComprobantesRecibidosFlow('sri', { base: o.portalUrl }));
  const flowId = flow.body.flow.id;
  await api.request('POST', `/api/flows/${encodeURIComponent(flowId)}/activate`);
  print(`3. created and activated the flow "comprobantes recibidos" (${flowId}, sha256 ${flow.body.flow.scriptHash.slice(0, 12)}…)`);

  const run = await api.request<{ jobId: string }>('POST', '/api/run', {
    providerId: 'sri', metadata: { year: o.year, month: o.month, type: o.type },
  }, { 'idempotency-key': `sri-demo-${suffix}` });
  const jobId = run.body.jobId;
  print(`4. queued job ${jobId}: ${o.type} of ${o.year}-${String(o.month).padStart(2, '0')}`);
  const job = await waitForJob(api, jobId, o.jobTimeoutMs ?? 600_000, waiting);
  print(`5. job ${jobId} ${job.status}${job.error ? `: ${job.error.code} ${job.error.message}` : ''} (${job.artifacts.length} file(s))`);

  const docs = await api.request<{ total: number; totals: Record<string, unknown> }>('GET',
    `/api/documents?year=${o.year}&month=${o.month}&type=${encodeURIComponent(o.type)}&pageSize=1`);
  print(`6. documents of ${o.type} for ${o.year}-${String(o.month).padStart(2, '0')}: ${docs.body.total}; totals ${JSON.stringify(docs.body.totals)}`);
  print(`   export: GET ${o.apiUrl}/api/documents/export?format=xlsx&year=${o.year}&month=${o.month}&type=${o.type}`);
  return { jobId, job, documents: { total: docs.body.total, totals: docs.body.totals } };
}

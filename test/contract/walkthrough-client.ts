/**
 * The README's walkthrough (register → connect the demo provider → create and activate a flow → run → follow the
 * job → its detail, artifacts and log) written against the API's generated types only: openapi-fetch's
 * `createClient<paths>()`, no cast, no `any`. test/contract/walkthrough.test.ts type-checks a copy of this file
 * against types generated from the document a running API serves, then runs that copy against the stack — so a
 * change of the API that breaks a client breaks the test. Imports nothing of the project but the types (the copy's
 * import points at the fresh ones).
 */
import createClient from 'openapi-fetch';
import type { components, paths } from '../../src/web/api/schema.d.ts';

type JobStatus = components['schemas']['Job']['status'];
type Step = components['schemas']['Step'];

const FINAL: readonly JobStatus[] = ['done', 'failed', 'cancelled', 'dead'];

export interface WalkthroughOptions {
  apiUrl: string;
  /** The demo portal's base URL (its host is the cookies' domain; the flow visits it). */
  portalUrl: string;
  /** The value of the portal's session cookie, from a login to the portal. */
  portalSession: string;
  portalUser: string;
  portalPassword: string;
  /** How long to wait for the job to finish. */
  jobTimeoutMs: number;
}

export interface WalkthroughOutcome {
  user: components['schemas']['User'];
  org: components['schemas']['Organisation'];
  flow: components['schemas']['Flow'];
  run: { status: number; jobId: string };
  statuses: JobStatus[];
  job: components['schemas']['JobDetail'];
  log: string;
}

/** An ErrorBody as one line: `CODE: message`. */
const failure = (what: string, status: number, body: components['schemas']['ErrorBody']) => new Error(`${what} → ${status} ${body.error.code}: ${body.error.message}`);

export function walkthroughSteps(portalUrl: string, portalUser: string): Step[] {
  return [
    { type: 'navigate', url: `${portalUrl}/login` },
    { type: 'fill', selector: '#username', value: portalUser },
    { type: 'fill', selector: '#password', secretRef: 'portalPassword' },
    { type: 'click', selector: '#submit' },
    { type: 'waitFor', selector: 'table#invoices' },
    { type: 'screenshot', fullPage: true },
    { type: 'download', selector: 'a.pdf' },
    {
      type: 'extract', name: 'invoices', selector: 'table#invoices tbody tr',
      fields: { number: 'td.number', date: 'td.date', amount: 'td.amount', pdf: { selector: 'a.pdf', attribute: 'href' } },
    },
  ];
}

export async function walkthrough(o: WalkthroughOptions): Promise<WalkthroughOutcome> {
  const anonymous = createClient<paths>({ baseUrl: o.apiUrl });
  const suffix = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

  const reg = await anonymous.POST('/api/auth/register', {
    body: { email: `contract-${suffix}@example.com`, password: 'correct-horse-battery-42', name: 'Ana', orgName: `Contract ${suffix}` },
  });
  if (reg.error) throw failure('register', reg.response.status, reg.error);
  const { token, user, org } = reg.data;

  const api = createClient<paths>({ baseUrl: o.apiUrl, headers: { authorization: `Bearer ${token}` } });
  const me = await api.GET('/api/me');
  if (me.error) throw failure('me', me.response.status, me.error);
  if (me.data.user.id !== user.id) throw new Error('GET /api/me answered another user');

  const host = new URL(o.portalUrl).hostname;
  const connect = await api.POST('/api/providers/{id}/connect', {
    params: { path: { id: 'demo' } },
    body: {
      cookies: [
        { name: 'demo_session', value: o.portalSession, domain: host, path: '/', httpOnly: true },
        { name: 'demo_locale', value: 'es-EC', domain: host, path: '/' },
      ],
      credentials: { portalPassword: o.portalPassword },
    },
  });
  if (connect.error) throw failure('connect', connect.response.status, connect.error);

  const created = await api.POST('/api/flows', {
    body: { providerId: 'demo', version: '1.0.0', name: 'Invoices', steps: walkthroughSteps(o.portalUrl, o.portalUser) },
  });
  if (created.error) throw failure('create flow', created.response.status, created.error);
  const activated = await api.POST('/api/flows/{id}/activate', { params: { path: { id: created.data.flow.id } } });
  if (activated.error) throw failure('activate', activated.response.status, activated.error);

  const run = await api.POST('/api/run', {
    params: { header: { 'idempotency-key': `contract-${suffix}` } },
    body: { providerId: 'demo', metadata: { period: '2026-01' } },
  });
  if (run.error) throw failure('run', run.response.status, run.error);
  const jobId = run.data.jobId;

  const statuses: JobStatus[] = [];
  const deadline = Date.now() + o.jobTimeoutMs;
  let job: components['schemas']['JobDetail'] | undefined;
  for (;;) {
    const status = await api.GET('/api/jobs/{id}/status', { params: { path: { id: jobId } } });
    if (status.error) throw failure('status', status.response.status, status.error);
    if (statuses[statuses.length - 1] !== status.data.status) statuses.push(status.data.status);
    if (FINAL.includes(status.data.status)) {
      // The status key is the worker's; the record (and so the detail) follows once the results listener has it.
      const detail = await api.GET('/api/jobs/{id}', { params: { path: { id: jobId } } });
      if (detail.error) throw failure('job detail', detail.response.status, detail.error);
      if (FINAL.includes(detail.data.job.status)) {
        job = detail.data.job;
        break;
      }
    }
    if (Date.now() > deadline) throw new Error(`job ${jobId} is still ${statuses.join(' → ')} after ${o.jobTimeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }

  const log = await api.GET('/api/jobs/{id}/logs', { params: { path: { id: jobId }, query: { follow: 'false' } }, parseAs: 'text' });
  if (log.error) throw failure('log', log.response.status, log.error);

  return { user, org, flow: created.data.flow, run: { status: run.response.status, jobId }, statuses, job, log: log.data };
}

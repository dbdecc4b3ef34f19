/**
 * `sri demo`: the integration walkthrough, over HTTP only, against a running stack — register, log in to the demo
 * portal to get its session cookie, connect the `demo` provider, create and activate a flow, run it, wait for the
 * job and show its artifacts. The end-to-end test drives the same function, so the README, the CLI and the test
 * cannot drift apart.
 */
import { randomBytes } from 'node:crypto';
import { SriError } from '../shared/errors.ts';
import { ApiClient } from './api-client.ts';

export { ApiClient };
import { TERMINAL_STATUSES, type JobStatus } from '../shared/schemas.ts';
import { DEMO_LOCALE_COOKIE, DEMO_PASSWORD, DEMO_SESSION_COOKIE, DEMO_USERNAME } from '../embedded/demo-portal.ts';

export interface DemoOptions {
  apiUrl: string;
  portalUrl: string;
  /** Progress and results. @default console.log */
  print?: (line: string) => void;
  /**
   * What the demo is waiting for, called on every poll with a text that changes only when the wait does (the job's
   * status, a retry): a spinner's text, or a line each time it changes (src/cli/progress.ts).
   * @default each new text printed with `print`
   */
  waiting?: (text: string) => void;
  /** How long to wait for the job to finish. @default 120000 */
  jobTimeoutMs?: number;
  /**
   * Value of the demo_locale cookie. The invoice page greets in its language ("Bienvenido" for es-*), which shows
   * in the parsed data that connected cookies reach the portal. @default 'es-EC'
   */
  locale?: string;
}

export interface DemoArtifact {
  kind: 'log' | 'screenshot' | 'download' | 'parsedData';
  name: string;
  uri: string;
  url: string;
}

export interface DemoJob {
  id: string;
  status: JobStatus;
  error: { code: string; message: string } | null;
  result: Record<string, unknown> | null;
  artifacts: DemoArtifact[];
  [k: string]: unknown;
}

export interface DemoOutcome {
  token: string;
  /** The demo portal's session cookie value that was connected (tests check it never reaches the evidence). */
  portalSession: string;
  user: { id: string; email: string; orgId: string };
  org: { id: string; name: string };
  flowId: string;
  jobId: string;
  job: DemoJob;
}

/** The flow the demo creates: every step type the compiler knows except waitFor {url|timeoutMs}. */
export function demoFlowSteps(portalUrl: string): Array<Record<string, unknown>> {
  return [
    { type: 'navigate', url: `${portalUrl}/login` },
    { type: 'fill', selector: '#username', value: DEMO_USERNAME },
    { type: 'fill', selector: '#password', secretRef: 'portalPassword' },
    { type: 'click', selector: '#submit' },
    { type: 'waitFor', selector: 'table#invoices' },
    { type: 'screenshot', fullPage: true },
    { type: 'download', selector: 'a.pdf' },
    {
      type: 'extract', name: 'invoices', selector: 'table#invoices tbody tr',
      fields: { number: 'td.number', date: 'td.date', amount: 'td.amount', pdf: { selector: 'a.pdf', attribute: 'href' } },
    },
    { type: 'extract', name: 'portal', selector: 'main', fields: { greeting: '#greeting', locale: '#locale' } },
  ];
}

/** Logs in to the demo portal with a plain form POST and returns the `demo_session` cookie value. */
export async function loginToDemoPortal(portalUrl: string): Promise<string> {
  let res: Response;
  try {
    res = await fetch(new URL('/login', portalUrl), {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ username: DEMO_USERNAME, password: DEMO_PASSWORD }).toString(),
    });
  } catch (e) {
    throw new SriError('SERVICE_UNAVAILABLE', `cannot reach the demo portal at ${portalUrl} (${(e as Error).cause ?? (e as Error).message}); start the stack with npm start`);
  }
  for (const c of res.headers.getSetCookie()) {
    const m = new RegExp(`^${DEMO_SESSION_COOKIE}=([^;]+)`).exec(c);
    if (m) return m[1]!;
  }
  throw new SriError('INTERNAL', `the demo portal at ${portalUrl} did not set the ${DEMO_SESSION_COOKIE} cookie (status ${res.status})`);
}

export async function runDemo(opts: DemoOptions): Promise<DemoOutcome> {
  const print = opts.print ?? ((l: string) => console.log(l));
  let lastWait: string | undefined;
  const waiting = opts.waiting ?? ((text: string) => { if (text !== lastWait) print(`   ${text}`); lastWait = text; });
  const api = new ApiClient(opts.apiUrl, { onRetry: (what) => waiting(`${what}; trying again`) });
  const portalHost = new URL(opts.portalUrl).hostname;
  const suffix = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

  const reg = await api.request<{ token: string; user: DemoOutcome['user']; org: DemoOutcome['org'] }>('POST', '/api/auth/register', {
    email: `demo-${suffix}@example.com`, password: `Demo-${randomBytes(6).toString('hex')}-2026`, name: 'Demo User', orgName: `Demo org ${suffix}`,
  });
  api.token = reg.body.token;
  print(`1. registered ${reg.body.user.email} in organisation ${reg.body.org.name} (${reg.body.org.id})`);

  const sessionCookie = await loginToDemoPortal(opts.portalUrl);
  print(`2. logged in to the demo portal at ${opts.portalUrl} (got the ${DEMO_SESSION_COOKIE} cookie)`);

  const connect = await api.request<{ expiresAt: unknown }>('POST', '/api/providers/demo/connect', {
    cookies: [
      { name: DEMO_SESSION_COOKIE, value: sessionCookie, domain: portalHost, path: '/', httpOnly: true, sameSite: 'Lax' },
      { name: DEMO_LOCALE_COOKIE, value: opts.locale ?? 'es-EC', domain: portalHost, path: '/' },
    ],
    credentials: { portalPassword: DEMO_PASSWORD },
  });
  print(`3. connected provider demo (session expires ${String(connect.body.expiresAt)})`);

  const flow = await api.request<{ flow: { id: string; scriptHash: string; scriptKey: string } }>('POST', '/api/flows', {
    providerId: 'demo', version: '1.0.0', name: 'Demo invoices',
    description: 'Logs in to the demo portal, screenshots and downloads the first invoice, extracts the invoice table.',
    steps: demoFlowSteps(opts.portalUrl),
  });
  const flowId = flow.body.flow.id;
  print(`4. created flow ${flowId} (script ${flow.body.flow.scriptKey}, sha256 ${flow.body.flow.scriptHash.slice(0, 12)}…)`);
  await api.request('POST', `/api/flows/${encodeURIComponent(flowId)}/activate`);
  print('5. activated the flow');

  const run = await api.request<{ jobId: string }>('POST', '/api/run', { providerId: 'demo', metadata: { source: 'sri demo' } },
    { 'idempotency-key': `demo-${suffix}` });
  const jobId = run.body.jobId;
  print(`6. queued job ${jobId}`);

  const job = await waitForJob(api, jobId, opts.jobTimeoutMs ?? 120_000, waiting);

  print(`7. job ${jobId} ${job.status}${job.error ? `: ${job.error.code} ${job.error.message}` : ''}`);
  if (job.artifacts.length) {
    print('   artifacts:');
    for (const a of job.artifacts) print(`   - ${a.kind.padEnd(10)} ${a.name}\n       ${a.uri}\n       ${a.url}`);
  }
  if (job.result) print(`   parsed data:\n${JSON.stringify(job.result, null, 2).replace(/^/gm, '     ')}`);
  return { token: reg.body.token, portalSession: sessionCookie, user: reg.body.user, org: reg.body.org, flowId, jobId, job };
}

/**
 * Polls the job's status until it is final, then its record until the API's results listener has recorded it (the
 * status key is the worker's; the record follows). Throws EXECUTION_TIMEOUT past `timeoutMs`.
 */
export async function waitForJob(api: ApiClient, jobId: string, timeoutMs: number, waiting: (text: string) => void): Promise<DemoJob> {
  const deadline = Date.now() + timeoutMs;
  let status: JobStatus = 'queued';
  for (;;) {
    status = (await api.request<{ status: JobStatus }>('GET', `/api/jobs/${encodeURIComponent(jobId)}/status`)).body.status;
    waiting(`job ${jobId}: ${status}`);
    if (TERMINAL_STATUSES.includes(status)) break;
    if (Date.now() > deadline) {
      throw new SriError('EXECUTION_TIMEOUT', `job ${jobId} is still ${status} after ${timeoutMs} ms; is a worker running? (WORKERS, or sri worker)`);
    }
    // Polling, not a fixed sleep: the loop ends as soon as the status is final.
    await new Promise((r) => setTimeout(r, 300));
  }
  let job: DemoJob;
  for (;;) {
    job = (await api.request<{ job: DemoJob }>('GET', `/api/jobs/${encodeURIComponent(jobId)}`)).body.job;
    if (TERMINAL_STATUSES.includes(job.status) || Date.now() > deadline) return job;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * `sri demo --json`: the outcome as one JSON document — the job, its status and error, its artifacts (with their
 * presigned links) and the parsed data. The API token and the portal's session cookie are left out: output gets
 * pasted and logged.
 */
export function demoJson(o: DemoOutcome): {
  jobId: string; status: JobStatus; error: DemoJob['error']; flowId: string;
  org: DemoOutcome['org']; user: DemoOutcome['user']; artifacts: DemoArtifact[]; data: Record<string, unknown> | null;
} {
  return {
    jobId: o.jobId, status: o.job.status, error: o.job.error, flowId: o.flowId,
    org: { id: o.org.id, name: o.org.name }, user: { id: o.user.id, email: o.user.email, orgId: o.user.orgId },
    artifacts: o.job.artifacts, data: o.job.result,
  };
}

/**
 * The attempt's browser stage: a context of its own (prepared ahead by the pool, browser.ts) armed with the job's
 * egress policy and byte budget, the portal's pacing, the session's cookies, the provider's session check, then the
 * script under the attempt's deadline (deadline.ts withDeadline + the attempt's run clock). A failure of the page is
 * captured as `failure` evidence; the context goes back to the pool to be recycled whatever happened.
 */
import type { BrowserContext, Page } from 'playwright-core';
import { isSriError, SriError } from '../../../shared/errors.ts';
import type { Cookie } from '../../../shared/schemas.ts';
import type { PreparedContext } from '../../browser.ts';
import { messageOf, type JobAttempt } from '../attempt.ts';
import { captchaSolverFor } from '../captcha.ts';
import { boundWait, withDeadline } from '../deadline.ts';
import { egressPolicyMissingError } from '../egress-hosts.ts';
import { egressLimitError, EgressTally, type ResultEgress } from '../egress-report.ts';
import { watchPortal, type PortalWatch } from '../gate-step.ts';
import { JobHandoff } from '../handoff.ts';
import { createHelpers, type JobArtifacts } from '../helpers.ts';
import type { ProviderPacing } from '../../../shared/provider-pacing.ts';
import { ensureSession, saveRefreshedCookies, sessionToCheck } from '../session-health.ts';
import { recordingOf, reserveContext } from '../recording.ts';
import { watchJobBlockers } from '../blocker-watch.ts';
import type { ExecutionLog } from '../execution-log.ts';
import { evidenceStore } from './evidence.ts';
import type { Prepared } from './prepare.ts';

/** What the browser stage leaves for the report: the egress totals and the portal watch (set as soon as known). */
export interface BrowserStageResult {
  egress?: ResultEgress;
  portal?: PortalWatch;
}

/**
 * Runs the job in a browser context of its own. `out` is filled as the stage goes, so the report has the egress
 * totals and the portal's last answer also when the stage throws.
 */
export async function runBrowserStage(a: JobAttempt, prepared: Prepared, pacing: ProviderPacing | undefined, out: BrowserStageResult): Promise<void> {
  const { job, deps, exec, config, redactor, secretValues } = a;
  const { hosts, policy, sessions } = prepared;
  a.phase = 'browser';
  a.trace.enter('run');
  const tally = new EgressTally();
  // Every job's context goes through the egress proxy, under the same policy as the route guard
  // (docs/security.md "Egress"). Without one, a refusal is the job's failure: EGRESS_POLICY_MISSING.
  const missing = (cause?: unknown) => egressPolicyMissingError(job.providerName, tally.blockedTotal, cause);
  // Over its byte budget the job ends at once: closing the context fails every pending page call.
  let closeContext: (() => void) | undefined;
  let reserved: PreparedContext;
  try {
    // A context of its own, prepared ahead or opened now: no cookie, storage or cache of another job (invariant 3).
    // A job that asks for recordings gets a context of its own with a video (recording.ts).
    reserved = await reserveContext(job, a.features.recordings, {
      browsers: deps.browsers, maxBytes: config.maxRecordingBytes, exec, artifacts: a.artifacts, store: evidenceStore(a), redact: (t) => redactor.redact(t),
    });
  } catch (e) {
    if (isSriError(e)) throw e;
    throw new SriError('BROWSER_ERROR', `Could not open a browser context: ${messageOf(e).split('\n')[0]}`, { cause: e });
  }
  a.browser = reserved.browser;
  const lease = reserved.arm(policy, tally.onBlocked, { maxBytes: config.egressMaxBytes, onLimitExceeded: () => closeContext?.() });
  try {
    const context = reserved.context;
    closeContext = () => { void context.close().catch(() => {}); };
    out.portal = watchPortal(context, job.providerName, pacing, deps.gate, {
      signal: a.signal,
      onHeld: (until, used, ceiling) => exec.info(`provider ${job.providerName}: ${used} of its ${ceiling} requests per minute are used (every organisation together); the job's next page action waits until ${new Date(until).toISOString()}`),
    });
    const evidence: EvidenceIo = {
      store: evidenceStore(a), charge: (n: number) => lease.charge(n), redact: (t: string) => redactor.redact(t),
      protect: (v: string) => { redactor.add([v]); secretValues.add([v]); },
    };
    await runInBrowser({ attempt: a, prepared, reserved, evidence, beforeAction: out.portal.beforeAction });
  } catch (e) {
    throw lease.limitExceeded() ? egressLimitError(config.egressMaxBytes, e) : hosts.source === 'missing' && tally.blockedTotal ? missing(e) : e;
  } finally {
    lease.release();
    out.egress = tally.finish(lease, (line) => exec.warn(line));
  }
  if (lease.limitExceeded()) throw egressLimitError(config.egressMaxBytes);
  if (hosts.source === 'missing' && tally.blockedTotal) throw missing();
  exec.info('script finished');
  // Cookies the portal renewed during the job go back to the connection (a daily schedule keeps its session).
  if (sessions.finalCookies) await saveRefreshedCookies(sessions.stored, sessions.finalCookies, exec);
}

/** What the helpers need to keep evidence: where downloads go, the job's byte budget, and the job's secrets. */
export interface EvidenceIo {
  readonly store: ReturnType<typeof evidenceStore>;
  readonly charge: (bytes: number) => boolean;
  readonly redact: (text: string) => string;
  /** Makes a value produced during the job (a TOTP code) one of its secrets: redacted in logs and errors, replaced in parsed data. */
  readonly protect: (value: string) => void;
}

/** Everything runInBrowser works with: the attempt, what the prepare stage found, the reserved context. */
export interface BrowserRun {
  readonly attempt: JobAttempt;
  readonly prepared: Prepared;
  readonly reserved: PreparedContext;
  readonly evidence: EvidenceIo;
  /** Waits, before each page action, while the provider's requests-per-minute budget is spent (gate-step.ts). */
  readonly beforeAction: (() => Promise<void>) | undefined;
}

/** The session check and the script in the reserved context, bounded by the attempt's deadline. */
export async function runInBrowser(run: BrowserRun): Promise<void> {
  const { attempt: a, prepared, reserved, evidence, beforeAction } = run;
  const { job, deps, config, exec, artifacts, signal } = a;
  const { script, session, sessions } = prepared;
  const context = reserved.context;
  const runStarted = Date.now();
  let closing = false;
  let scriptRuns = false;
  let blockers: ReturnType<typeof watchJobBlockers> | undefined;
  context.once('close', () => { closing = true; });
  const closeContext = () => { closing = true; return context.close(); };
  try {
    context.setDefaultTimeout(config.playwrightTimeoutMs);
    context.setDefaultNavigationTimeout(config.playwrightTimeoutMs);
    // The host guard was installed when the context was prepared (browser.ts); `arm` gave it this job's policy.
    const cookies = toPlaywrightCookies(session.cookies, (t) => exec.warn(t));
    try {
      if (cookies.length) await context.addCookies(cookies);
    } catch (e) {
      throw new SriError('SESSION_NOT_FOUND', `Session not found: the browser refused its cookies (${(e as Error).message.split('\n')[0]}); connect the provider again.`);
    }
    await recordingOf(context)?.start(); // after the cookies: their values are not in the trace
    // The page's console (the portal's own and the script's `evaluate`), every page of the context.
    context.on('console', (m) => exec.console(m.type(), m.text()));
    // The prepared context's one page, blank until the script navigates.
    const page = reserved.page;
    // A page whose renderer crashed answers nothing more: the job ends at once (BROWSER_CRASHED, retried) instead of
    // waiting for its deadline; the context is closed with it, and the slot's next job has a fresh one anyway.
    const onCrash = () => {
      if (a.crashed) return;
      a.crashed = true;
      exec.error('the page crashed (its renderer process died)');
      void closeContext().catch(() => {});
    };
    page.on('crash', onCrash);
    context.on('page', (p) => p.on('crash', onCrash));
    // Popups and window.open: at most WORKER_MAX_PAGES open at once; the rest are closed as they open.
    let pagesClosed = 0;
    context.on('page', (p) => {
      if (context.pages().length <= config.maxPages) return;
      if (++pagesClosed === 1) exec.warn(`the job opened more than ${config.maxPages} pages at once (WORKER_MAX_PAGES); further pages are closed as they open`);
      void p.close().catch(() => {});
    });
    const { timeoutMs } = a;
    // The job's run time, paused while it waits for a person (deadline.ts JobClock, handoff.ts).
    const clock = a.runClock();
    const handoff = new JobHandoff(page, {
      redis: deps.redis, queue: deps.queue, taken: a.taken, jobId: job.jobId, orgId: job.orgId, attempt: a.attempt, workerId: config.workerId,
      maxTimeoutMs: config.handoffMaxMs, frameIntervalMs: Math.ceil(1000 / Math.min(30, config.liveViewFps)), frameQuality: 60,
      clock, signal, exec, logger: deps.logger,
      announce: (state) => ({
        jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId, success: false, status: 'waiting_for_user',
        duration: Date.now() - runStarted, attempt: a.attempt, workerId: config.workerId, finishedAt: new Date().toISOString(),
        files: { log: '', screenshots: [] }, handoff: { reason: evidence.redact(state.reason), expiresAt: state.expiresAt },
      }),
    });
    // Blocker classification after each navigation and at a failure (blocker-watch.ts, docs/scripts.md "Blockers"),
    // unless the live configuration switched it off (then only helpers.detectBlocker classifies).
    blockers = watchJobBlockers(context, page, {
      exec, redact: evidence.redact, loggedOut: sessions.health?.check, artifacts,
      onBlocker: deps.onBlocker && ((k) => deps.onBlocker!(job.providerName, k)),
    }, { automatic: a.features.blockerWatch });
    if (!a.features.blockerWatch) exec.info('blocker detection after navigations is off (live configuration features.blockerWatch)');
    const helpers = createHelpers({
      blockers,
      handoff: (reason, o) => handoff.request(reason, o),
      captcha: { solver: captchaSolverFor(config), signal, handoff: (reason, source) => handoff.request(reason, { source }) },
      page, credentials: session.credentials ?? {}, totp: session.totp ?? {}, protect: evidence.protect, exec, artifacts, timeoutMs: config.playwrightTimeoutMs,
      limits: { maxScreenshots: config.maxScreenshots, maxDownloads: config.maxDownloads, maxDownloadBytes: config.maxDownloadBytes },
      store: evidence.store, charge: evidence.charge, redact: evidence.redact, ...(beforeAction ? { beforeAction } : {}),
    });
    const jobContext = Object.freeze({
      jobId: job.jobId, orgId: job.orgId, userId: job.userId, providerId: job.providerId,
      flowId: job.flowId, flowVersion: job.flowVersion, attempt: a.attempt,
    });
    a.phase = 'script';
    reserved.to('running');
    // Before the flow's steps: is the portal session still logged in? Logged out, the provider's login flow signs in
    // again in this context, sandboxed and bounded like the script (docs/sessions.md).
    const health = sessions.health;
    if (health && sessionToCheck(health, session)) {
      await ensureSession({
        page, health, providerName: job.providerName, exec,
        runLogin: (login) => withDeadline(
          deps.runner.run(login, { page, payload: {}, helpers, context: jobContext }, { timeoutMs, signal, filename: `login-${job.providerName}.js` }),
          timeoutMs, signal, closeContext),
        save: async () => {
          const cookies = await context.cookies();
          a.secretValues.add(cookies.filter((c) => c.httpOnly).map((c) => c.value));
          await saveRefreshedCookies(sessions.stored, cookies, exec, 'replace');
        },
      });
    }
    exec.info(`running the script (${deps.runner.name}, limit ${timeoutMs} ms)`);
    scriptRuns = true;
    await withDeadline(
      deps.runner.run(script, { page, payload: structuredClone(job.metadata ?? {}), helpers, context: jobContext },
        { timeoutMs, signal, clock, filename: `flow-${job.flowId}-${job.flowVersion}.js` }),
      timeoutMs, signal, closeContext, clock);
  } catch (e) {
    recordingOf(context)?.failed();
    // What a person needs to see why: the page as it was when the script failed. Not from a page that is gone
    // (crash, timeout, cancel: the context is closing) — the job's end must not wait on it.
    const atFailure = !closing && !a.crashed ? await blockers?.atFailure(reserved.page) : undefined;
    if (scriptRuns && !closing && !a.crashed && a.features.failureCapture) await captureFailure(reserved.page, artifacts, evidence.redact, exec);
    // The flow failed on the provider's login wall: the portal ended the session while the script ran. The job goes
    // the way of a session found expired at its start: retried, its next attempt's session check signs in again
    // with the login flow, or ends SESSION_EXPIRED (docs/sessions.md "Logged out during the flow").
    const health = sessions.health;
    if (scriptRuns && atFailure?.kind === 'login-wall' && health && sessionToCheck(health, session) && lostToLoginWall(e)) {
      exec.warn(`the portal logged the session out during the flow (${atFailure.evidence}); the job is retried and signs in again`);
      throw new SriError('SESSION_LOGGED_OUT', `The portal logged the session out while the flow ran (${atFailure.evidence}; the flow then failed: ${evidence.redact(messageOf(e).split('\n')[0] ?? '').slice(0, 300)}): the job is retried and its next attempt signs in again.`, { cause: e });
    }
    throw e;
  } finally {
    // Downloads still being stored (a script that did not await one) finish, or fail, before their files go away
    // with the context; each is bounded by its own upload deadline.
    await Promise.allSettled([...artifacts.storing]);
    await blockers?.settle(); // a navigation's look still under way (bounded: blocker-watch.ts)
    await recordingOf(context)?.stop(); // before the cookies are read back: they stay out of the trace
    // Cookies the portal set during the job (a new session token after a login) count for parsed data too. Not
    // asked of a context already closing (timeout, cancel, byte budget): the job's end must not wait on it.
    if (!closing) {
      const cookies = await context.cookies().catch(() => []);
      a.secretValues.add(cookies.filter((c) => c.httpOnly).map((c) => c.value));
      sessions.finalCookies = cookies;
    }
    await reserved.recycle();
  }
}

/**
 * Whether the flow's failure may be the login wall's doing: the script's own error or a navigation's (a step that
 * waited for content the login page does not have), not the job's deadline, a cancel, a limit or a hand-off.
 */
function lostToLoginWall(e: unknown): boolean {
  return !isSriError(e) || e.code === 'SCRIPT_ERROR' || e.code === 'NAVIGATION_ERROR' || e.code === 'PORTAL_UNAVAILABLE';
}

/** Longest the failure captures may take together: the job's failure is reported after them. */
const FAILURE_CAPTURE_MS = 5000;

/**
 * A screenshot (secret fields masked, as helpers.screenshot does) and the page's HTML (redacted: the job's secrets
 * replaced) at the moment of failure, kept as `failure` evidence. Best effort: a capture that fails is logged.
 */
async function captureFailure(page: Page, artifacts: JobArtifacts, redact: (text: string) => string, exec: ExecutionLog): Promise<void> {
  const capture = async () => {
    const mask = [...artifacts.secretFields].map((sel) => page.locator(sel));
    const shot = await page.screenshot({ timeout: FAILURE_CAPTURE_MS, ...(mask.length ? { mask } : {}) });
    artifacts.failure.push({ name: 'failure-screenshot.png', body: shot, contentType: 'image/png' });
    const html = redact(await page.content());
    artifacts.failure.push({ name: 'failure-page.html', body: Buffer.from(html, 'utf8'), contentType: 'text/html; charset=utf-8' });
  };
  try {
    await boundWait(capture(), FAILURE_CAPTURE_MS, 'capturing the failed page');
    exec.info(`failure captured: ${artifacts.failure.map((x) => `${x.name} (${x.body.length} bytes)`).join(', ')}`);
  } catch (e) {
    exec.warn(`the failed page could not be captured: ${redact(messageOf(e).split('\n')[0] ?? '')}`);
  }
}

type PlaywrightCookie = Parameters<BrowserContext['addCookies']>[0][number];

/** Playwright wants either `url`, or `domain` + `path`, per cookie; cookies with neither cannot be placed. */
export function toPlaywrightCookies(cookies: readonly Cookie[], warn: (text: string) => void): PlaywrightCookie[] {
  const out: PlaywrightCookie[] = [];
  for (const c of cookies) {
    const common = {
      name: c.name, value: c.value,
      ...(c.expires !== undefined ? { expires: c.expires } : {}),
      ...(c.httpOnly !== undefined ? { httpOnly: c.httpOnly } : {}),
      ...(c.secure !== undefined ? { secure: c.secure } : {}),
      ...(c.sameSite !== undefined ? { sameSite: c.sameSite } : {}),
    };
    if (c.url) out.push({ ...common, url: c.url });
    else if (c.domain) out.push({ ...common, domain: c.domain, path: c.path ?? '/' });
    else warn(`cookie "${c.name}" has neither url nor domain; it was not loaded`);
  }
  return out;
}

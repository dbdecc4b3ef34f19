/**
 * The worker's blocker classification of one job attempt (docs/scripts.md "Blockers"): after each main-frame
 * navigation of the job's page, and when the job fails, it looks at the page once (blocker.ts lookAtPage) and keeps
 * the last blocker seen for the result's `blocker`.
 *
 * What must hold:
 *   - One evaluate per main-frame navigation: the look started by the navigation is the one the CAPTCHA path after a
 *     script's goto uses (helpers.solveCaptcha asks `look`), not a second one.
 *   - Cheap and bounded: the look waits for the document (domcontentloaded) at most SETTLE_MS, its evaluate at most
 *     LOOK_MS (a look that got no answer may be asked again); a navigation's look runs beside the script, never in its way; nothing here throws or fails the job.
 *   - What it keeps and logs is redacted: the URL without query or fragment, the evidence through the job's redactor.
 */
import type { BrowserContext, Page, Response } from 'playwright-core';
import type { SessionCheck } from '../../shared/provider-catalogue.ts';
import type { BlockerKind, ResultBlocker } from '../../shared/schemas.ts';
import { lookAtPage, type Blocker, type PageLook } from './blocker.ts';
import type { ExecutionLog } from './execution-log.ts';

/** Longest a navigation's look waits for its document to be parsed. */
const SETTLE_MS = 5_000;
/** Longest one look's evaluate may take. */
const LOOK_MS = 3_000;

export interface BlockerWatchOptions {
  readonly exec: ExecutionLog;
  /** The job's redactor (its secrets replaced). */
  readonly redact: (text: string) => string;
  /** The provider's session check (its logged-out address and marker make a login wall); none: 401 only. */
  readonly loggedOut?: SessionCheck | undefined;
  /** Told once per kind the attempt meets (the worker's metrics). */
  readonly onBlocker?: (kind: BlockerKind) => void;
  /** Where the last blocker goes (the job's artifacts, which the pipeline reports). */
  readonly keep: (blocker: ResultBlocker) => void;
  /**
   * Look after each main-frame navigation and at a failure (the live feature flag features.blockerWatch). false: only
   * when asked (`look`, helpers.detectBlocker). @default true
   */
  readonly automatic?: boolean;
  /** @default SETTLE_MS, LOOK_MS */
  readonly settleMs?: number;
  readonly lookMs?: number;
}

interface PageState {
  /** Main-frame navigations seen. */
  seq: number;
  /** Status of the last main-frame document response, until its navigation commits. */
  pendingStatus: number | undefined;
  /** Status of the current document (0: unknown). */
  status: number;
  /** The look of navigation `seq`, once started. */
  look: { seq: number; promise: Promise<PageLook | null> } | undefined;
}

export class BlockerWatch {
  private readonly pages = new WeakMap<Page, PageState>();
  private readonly kinds = new Set<BlockerKind>();
  private readonly running = new Set<Promise<unknown>>();
  private lastLogged = '';
  /** The last blocker seen (redacted), if any. */
  last: ResultBlocker | undefined;

  constructor(private readonly opts: BlockerWatchOptions) {}

  /** False when blocker detection after navigations is switched off (features.blockerWatch): looks only when asked. */
  get automatic(): boolean {
    return this.opts.automatic !== false;
  }

  /** The provider's session check the login-wall rule uses. */
  get loggedOut(): SessionCheck | undefined {
    return this.opts.loggedOut;
  }

  /** Looks at `page` after each of its main-frame navigations (the job's page; popups the job opens too). */
  watch(page: Page): void {
    if (this.pages.has(page)) return;
    const state: PageState = { seq: 0, pendingStatus: undefined, status: 0, look: undefined };
    this.pages.set(page, state);
    page.on('response', (r: Response) => {
      try {
        if (r.frame() === page.mainFrame() && r.request().isNavigationRequest()) state.pendingStatus = r.status();
      } catch { /* a response of a frame already gone */ }
    });
    page.on('framenavigated', (frame) => {
      if (frame !== page.mainFrame()) return;
      state.seq++;
      // The browser's own error page (a navigation that failed: refused by the egress policy, unreachable) is no
      // portal's page: it has no response, so the previous document's status must not be read as its own (a 429
      // before it would name the error page a rate limit), and nothing on it is a blocker — the error explains it.
      if (isBrowserErrorPage(frame.url())) { state.status = 0; state.pendingStatus = undefined; return; }
      // A same-document navigation (history.pushState, #hash) has no response: the document's status stays.
      if (state.pendingStatus !== undefined) { state.status = state.pendingStatus; state.pendingStatus = undefined; }
      if (this.opts.automatic === false) return;
      const seq = state.seq;
      const started = page.waitForLoadState('domcontentloaded', { timeout: this.opts.settleMs ?? SETTLE_MS }).catch(() => {})
        .then(() => (state.seq === seq && !page.isClosed() ? this.look(page) : null));
      this.track(started);
    });
  }

  /**
   * The look at `page`'s current document: the one already taken or under way for this navigation, else a new one.
   * Records the blocker it finds. Never throws.
   */
  look(page: Page): Promise<PageLook | null> {
    let state = this.pages.get(page);
    if (!state) { this.watch(page); state = this.pages.get(page)!; }
    if (state.look?.seq === state.seq) return state.look.promise;
    if (isBrowserErrorPage(page.url())) return Promise.resolve(null);
    const promise = lookAtPage(page, { loggedOut: this.opts.loggedOut, passwordFieldIsLoginWall: false, status: state.status, timeoutMs: this.opts.lookMs ?? LOOK_MS })
      .catch(() => null)
      .then((found) => { if (found?.blocker) this.record(found.blocker); return found; });
    const entry = { seq: state.seq, promise };
    state.look = entry;
    // A look that found nothing to read (the bound passed on a busy page, the page went away) may be asked again.
    void promise.then((found) => { if (found === null && state.look === entry) state.look = undefined; });
    return promise;
  }

  /**
   * At the job's failure: the page as it is then (its look, if its navigation had none yet); returns the blocker on
   * it, if any (a login wall there is the session lost mid-flow: stages/browser.ts). Bounded; never throws.
   */
  async atFailure(page: Page): Promise<Blocker | null> {
    if (page.isClosed() || this.opts.automatic === false) return null;
    return (await this.look(page))?.blocker ?? null;
  }

  /** Waits, bounded, for the looks under way (a navigation just before the script ended). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.running]);
  }

  private track(p: Promise<unknown>): void {
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }

  private record(b: { kind: BlockerKind; url: string; evidence: string }): void {
    const kept: ResultBlocker = { kind: b.kind, url: this.opts.redact(b.url), evidence: this.opts.redact(b.evidence) };
    this.last = kept;
    this.opts.keep(kept);
    const line = `blocker: ${kept.kind} at ${kept.url} (${kept.evidence})`;
    if (line !== this.lastLogged) { this.lastLogged = line; this.opts.exec.warn(line); }
    if (!this.kinds.has(kept.kind)) {
      this.kinds.add(kept.kind);
      try { this.opts.onBlocker?.(kept.kind); } catch { /* metrics never fail a job */ }
    }
  }
}

/** Chromium's page for a navigation that failed (`chrome-error://chromewebdata/`). */
function isBrowserErrorPage(url: string): boolean {
  return url.startsWith('chrome-error:');
}

/**
 * The job's watch, for the pipeline (one call): classifies the job's page and every page the job opens after each
 * main-frame navigation, keeps the last blocker in the job's artifacts, and tells `onBlocker` each new kind.
 */
export function watchJobBlockers(
  context: BrowserContext, page: Page,
  o: { exec: ExecutionLog; redact: (text: string) => string; loggedOut: SessionCheck | undefined; artifacts: { blocker: ResultBlocker | undefined }; onBlocker?: ((kind: BlockerKind) => void) | undefined },
  flags: { automatic: boolean } = { automatic: true },
): BlockerWatch {
  const watch = new BlockerWatch({ exec: o.exec, redact: o.redact, loggedOut: o.loggedOut, keep: (b) => { o.artifacts.blocker = b; }, automatic: flags.automatic, ...(o.onBlocker ? { onBlocker: o.onBlocker } : {}) });
  watch.watch(page);
  context.on('page', (p) => watch.watch(p));
  return watch;
}

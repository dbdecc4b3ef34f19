/**
 * The worker's side of a sandboxed script: every page, frame, locator or helper call the script makes arrives here
 * as a message from its child process (child.ts) and is carried out on the job's real Playwright objects — if the
 * tables in methods.ts allow it. The child is untrusted: a message names a handle of this job only (ids are per job),
 * a method from the tables, and JSON arguments that are checked here; nothing it sends is compiled or run in the
 * worker (a function argument is passed to Playwright as source text, which runs it in the page; a regular expression
 * is a stand-in Playwright serialises for the page, see pageRegExp; URL patterns are matched by the child itself,
 * methods.ts MATCHED_IN_CHILD).
 */
import type { BrowserContext, Dialog, Download, Frame, Locator, FrameLocator, Page } from 'playwright-core';
import { isSriError, SriError } from '../../../shared/errors.ts';
import type { FetchOptions, ScriptHelpers } from '../../job/helpers.ts';
import { BUILDERS, CALLS, CHILD_ONLY_CALLS, FUNCTION_ARG, PAGE_EVENTS, takesFunction, WAITABLE_EVENTS, type Kind } from './methods.ts';
import type { FromChild, HandleRef, Step, ToChild } from './protocol.ts';

type Root = { kind: 'Page'; obj: Page } | { kind: 'Frame'; obj: Frame } | { kind: 'Dialog'; obj: Dialog } | { kind: 'Download'; obj: Download } | { kind: 'Helpers'; obj: ScriptHelpers };
type Target = Root | { kind: 'Locator'; obj: Locator } | { kind: 'FrameLocator'; obj: FrameLocator };

export interface HostLimits {
  /** Calls a script may make in all (a runaway loop of page calls is stopped, not served forever). */
  readonly maxCalls: number;
  /** Calls in flight at once. */
  readonly maxPending: number;
  /** Default timeout of waits the script starts (waitForEvent, downloads). */
  readonly timeoutMs: number;
}

/** Codes of helper failures that end the job with that code even when the script catches the error. */
const STOPS_THE_JOB: ReadonlySet<string> = new Set(['SCRIPT_RESOURCE_LIMIT', 'HANDOFF_ABANDONED', 'HANDOFF_TIMEOUT']);

/** Stops the job: the script went over a limit or broke the protocol. */
export class SandboxViolation extends SriError {}

/** Largest message either side sends: a call with its arguments, or a result. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const MAX_DEPTH = 32;

/** URLs of one frame's navigations kept for the child's waitForURL between two of its calls. */
const NAV_LOG_KEEP = 32;
/** Flags a JS RegExp may carry. */
const REGEXP_FLAGS = /^[dgimsuvy]*$/;

/**
 * A regular expression for the page, not for the worker: what Playwright reads to serialise one — `source`, `flags`,
 * `unicode`/`unicodeSets`, `String(re)`, and `Object.prototype.toString` giving `[object RegExp]` (its `isRegExp`) —
 * into a selector (`getByText(/…/)`, `filter({ hasText })`) or an evaluate argument, where the page's JS compiles and
 * runs it. It has no `test`/`exec`: should a Playwright path ever try to run it in the worker, that fails at once
 * instead of backtracking on the worker's event loop.
 */
export function pageRegExp(source: string, flags: string): object {
  const text = `/${source}/${flags}`;
  return Object.freeze(Object.create(null, {
    source: { value: source, enumerable: true },
    flags: { value: flags, enumerable: true },
    unicode: { value: flags.includes('u') },
    unicodeSets: { value: flags.includes('v') },
    toString: { value: () => text },
    [Symbol.toStringTag]: { value: 'RegExp' },
  }) as object);
}

interface NavLog { seq: number; recent: Array<{ seq: number; url: string }>; wake: Set<() => void> }

/** A function for Playwright whose source is the script's text: Playwright sends `String(fn)` to the page. */
function pageFunction(source: string): () => void {
  const fn = () => {};
  Object.defineProperty(fn, 'toString', { value: () => source });
  return fn;
}

/**
 * Page, frame and locator calls that may make the portal's pages send requests: the provider's request pacing
 * (ScriptHelpers.beforeAction) runs before each. Reads (textContent, isVisible, waitFor…) are not paced.
 */
const PACED_ACTIONS: ReadonlySet<string> = new Set([
  'goto', 'reload', 'goBack', 'goForward', 'setContent', 'click', 'dblclick', 'tap', 'press', 'pressSequentially', 'type',
  'check', 'uncheck', 'setChecked', 'selectOption', 'setInputFiles', 'dispatchEvent', 'evaluate', 'evaluateHandle',
  'keyboard.press', 'keyboard.type', 'keyboard.insertText', 'mouse.click', 'mouse.dblclick', 'submit',
]);

export class SandboxHost {
  private readonly roots = new Map<number, Root>();
  private readonly ids = new WeakMap<object, number>();
  private nextHandle = 2;
  private calls = 0;
  private inFlight = 0;
  private readonly downloads = new Map<number, Promise<Download>>();
  private nextWaiter = 1;
  private readonly subscribed = new Set<string>();
  /** Navigation logs per frame, for frames whose URL the child waits on (navigations). */
  private readonly navLogs = new Map<Frame, NavLog>();
  private readonly navWatched = new WeakSet<Page>();
  readonly helpersHandle = 0;
  readonly pageRef: HandleRef;

  constructor(
    page: Page,
    private readonly context: BrowserContext,
    private readonly helpers: ScriptHelpers,
    private readonly limits: HostLimits,
    private readonly send: (m: ToChild) => void,
    /** The same, already serialised (replies are measured before they are sent). */
    private readonly sendLine: (line: string) => void,
    /** Told when the script must be stopped (limit or protocol); the runner kills the child. */
    private readonly stop: (e: SriError) => void,
  ) {
    this.roots.set(this.helpersHandle, { kind: 'Helpers', obj: helpers });
    this.pageRef = this.ref('Page', page);
  }

  /** One message from the child; answers calls, never throws. */
  handle(msg: FromChild & { t: 'call' }): void {
    if (++this.calls > this.limits.maxCalls) {
      this.stop(new SriError('SCRIPT_RESOURCE_LIMIT', `The script made more than ${this.limits.maxCalls} page/helper calls (WORKER_SCRIPT_MAX_CALLS); it was stopped.`));
      return;
    }
    // helpers.log and setResult are synchronous here and not awaited by the script: answered at once, never counted
    // as waiting (a script that logs 1,000 lines in a loop is not a flood).
    if (msg.h === this.helpersHandle && (msg.m === 'log' || msg.m === 'setResult')) {
      let reply: ToChild & { t: 'res' };
      try {
        const a = msg.a.map((x) => this.decode(x, msg.m));
        if (msg.m === 'log') this.helpers.log(String(a[0]));
        else this.helpers.setResult(a[0] as Record<string, unknown>);
        reply = { t: 'res', id: msg.id, ok: true, v: null };
      } catch (e) {
        if (isSriError(e) && e.code === 'SCRIPT_RESOURCE_LIMIT') this.stop(e);
        reply = { t: 'res', id: msg.id, ok: false, e: { name: 'Error', message: (e as Error).message } };
      }
      this.reply(reply);
      return;
    }
    if (this.inFlight >= this.limits.maxPending) {
      this.stop(new SriError('SCRIPT_RESOURCE_LIMIT', `The script had more than ${this.limits.maxPending} page/helper calls waiting at once; it was stopped.`));
      return;
    }
    this.inFlight++;
    void this.dispatch(msg).then(
      (v) => this.reply({ t: 'res', id: msg.id, ok: true, v }),
      (e: unknown) => {
        // Over a limit: the job stops with that code, whether or not the script would catch the error.
        // A hand-off that the person gave up or left unanswered ends the job with its own code, caught or not.
        if (e instanceof SandboxViolation || (isSriError(e) && STOPS_THE_JOB.has(e.code))) this.stop(e as SriError);
        const err = e as { name?: unknown; message?: unknown } | null;
        this.reply({ t: 'res', id: msg.id, ok: false, e: { name: typeof err?.name === 'string' ? err.name : 'Error', message: typeof err?.message === 'string' ? err.message : String(e) } });
      },
    ).finally(() => { this.inFlight--; });
  }

  private reply(m: ToChild & { t: 'res' }): void {
    const u: Record<string, string> = {};
    for (const [id, r] of this.roots) if (r.kind === 'Page' && !r.obj.isClosed()) u[id] = r.obj.url();
    let line: string;
    try {
      line = JSON.stringify({ ...m, u });
      if (line.length > MAX_MESSAGE_BYTES) throw new Error(`it is over ${MAX_MESSAGE_BYTES} bytes`);
    } catch (e) {
      line = JSON.stringify({ t: 'res', id: m.id, ok: false, e: { name: 'Error', message: `The result cannot be passed to the script: ${(e as Error).message}` }, u });
    }
    this.sendLine(line);
  }

  private ref(kind: HandleRef['k'], obj: Page | Frame | Dialog | Download): HandleRef {
    let id = this.ids.get(obj);
    if (id === undefined) {
      id = this.nextHandle++;
      this.ids.set(obj, id);
      this.roots.set(id, { kind, obj } as Root);
    }
    const d: Record<string, unknown> =
      kind === 'Page' ? { url: (obj as Page).url() }
        // The URL lets the child match page.frame({ url }) itself (methods.ts MATCHED_IN_CHILD).
        : kind === 'Frame' ? { name: (obj as Frame).name(), url: (obj as Frame).url() }
          : kind === 'Dialog' ? { type: (obj as Dialog).type(), message: (obj as Dialog).message(), defaultValue: (obj as Dialog).defaultValue() }
            : { suggestedFilename: (obj as Download).suggestedFilename(), url: (obj as Download).url() };
    return { $h: id, k: kind, d };
  }

  private refOrNull(kind: HandleRef['k'], obj: Page | Frame | null): HandleRef | null {
    return obj ? this.ref(kind, obj) : null;
  }

  /** Arguments as Playwright takes them: only JSON data, the encodings of protocol.ts, nothing that names a path. */
  private decode(v: unknown, method: string, depth = 0): unknown {
    if (depth > MAX_DEPTH) throw new SandboxViolation('SCRIPT_ERROR', 'An argument is nested too deeply.');
    if (Array.isArray(v)) return v.map((x) => this.decode(x, method, depth + 1));
    if (v === null || typeof v !== 'object') return v;
    const o = v as Record<string, unknown>;
    if (o['$u'] === 1) return undefined;
    if (Array.isArray(o['$re'])) {
      const [source, flags] = o['$re'] as unknown[];
      if (typeof source !== 'string' || typeof flags !== 'string' || !REGEXP_FLAGS.test(flags)) throw new Error('bad regular expression argument');
      return pageRegExp(source, flags);
    }
    if (o['$loc'] && typeof o['$loc'] === 'object') {
      const loc = o['$loc'] as { h?: unknown; c?: unknown };
      const t = this.resolve(loc.h, loc.c);
      if (t.kind !== 'Locator') throw new Error('only a locator can be passed here');
      return t.obj;
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(o)) {
      if (FORBIDDEN_KEYS.has(k)) throw new Error(`"${k}" is not allowed as an option name`);
      // No allowed call takes a file path; refusing the key keeps a future Playwright option from reading or
      // writing the worker's files. (Data for the page — evaluate's argument — may use any key.)
      if (k === 'path' && !Object.hasOwn(FUNCTION_ARG, method)) throw new Error('file paths cannot be passed to the page API');
      out[k] = this.decode(x, method, depth + 1);
    }
    return out;
  }

  /** The object a call targets: a handle of this job, then the locator steps replayed on it. */
  private resolve(h: unknown, chain: unknown): Target {
    const root = typeof h === 'number' ? this.roots.get(h) : undefined;
    if (!root) throw new SandboxViolation('SCRIPT_ERROR', 'The script used a handle that does not exist (or belongs to no page of this job).');
    let t: Target = root;
    if (chain === undefined) return t;
    if (!Array.isArray(chain) || chain.length > 64) throw new SandboxViolation('SCRIPT_ERROR', 'Bad locator chain.');
    for (const step of chain as Step[]) {
      const builders = (BUILDERS as Record<string, Record<string, 'Locator' | 'FrameLocator'>>)[t.kind];
      const result = step && typeof step.m === 'string' && builders && Object.hasOwn(builders, step.m) ? builders[step.m] : undefined;
      if (!result || !Array.isArray(step.a) || step.a.length > 4) throw new SandboxViolation('SCRIPT_ERROR', `Locator step ${String(step?.m)} is not available on ${t.kind}.`);
      const args = step.a.map((x) => this.decode(x, step.m));
      const obj = (t.obj as unknown as Record<string, (...a: unknown[]) => unknown>)[step.m]!(...args);
      t = { kind: result, obj } as Target;
    }
    return t;
  }

  private async dispatch(msg: FromChild & { t: 'call' }): Promise<unknown> {
    const t = this.resolve(msg.h, msg.c);
    const m = msg.m;
    if (!CALLS[t.kind as Kind].includes(m) && !CHILD_ONLY_CALLS[t.kind as Kind]?.includes(m) && m !== 'subscribe') {
      throw new Error(`${t.kind.toLowerCase()}.${m} is not part of the script page API (docs/scripts.md lists what is).`);
    }
    if (!Array.isArray(msg.a) || msg.a.length > 8) throw new Error('too many arguments');
    const args = msg.a.map((x, i) => (takesFunction(m, i) ? this.functionArg(x) : this.decode(x, m)));

    // A page action that may send requests waits while its provider's requests-per-minute budget is spent.
    if ((t.kind === 'Helpers' ? m === 'fetch' : t.kind !== 'Dialog' && t.kind !== 'Download' && PACED_ACTIONS.has(m))) await this.helpers.beforeAction();
    switch (t.kind) {
      case 'Helpers': return this.helperCall(t.obj, m, args);
      case 'Dialog': return m === 'accept' ? t.obj.accept(typeof args[0] === 'string' ? args[0] : undefined) : t.obj.dismiss();
      case 'Download':
        if (m === 'failure') return t.obj.failure();
        if (m === 'cancel') return t.obj.cancel();
        return this.helpers.saveDownload(t.obj);
      case 'Page': return this.pageCall(t.obj, m, args);
      case 'Frame': return this.frameCall(t.obj, m, args);
      default: return this.invoke(t.obj, m, args);
    }
  }

  /** evaluate's function (or expression): source text for the page. */
  private functionArg(x: unknown): unknown {
    if (typeof x === 'string') return x;
    const src = (x as { $fn?: unknown } | null)?.$fn;
    if (typeof src !== 'string') throw new Error('pass a function or an expression string');
    return pageFunction(src);
  }

  private async invoke(obj: object, m: string, args: unknown[]): Promise<unknown> {
    const fn = (obj as Record<string, unknown>)[m];
    if (typeof fn !== 'function') throw new Error(`${m} is not available here`);
    return toData(await (fn as (...a: unknown[]) => unknown).apply(obj, args));
  }

  private async pageCall(page: Page, m: string, args: unknown[]): Promise<unknown> {
    switch (m) {
      case 'frames': return page.frames().map((f) => this.ref('Frame', f));
      case 'mainFrame': return this.ref('Frame', page.mainFrame());
      case 'frame': return this.refOrNull('Frame', page.frame({ name: frameName(args[0]) }));
      case 'navigations': return this.navigations(page.mainFrame(), args[0], args[1]);
      case 'opener': return this.refOrNull('Page', await page.opener());
      case 'cookies': return this.context.cookies(args[0] as string[] | undefined);
      case 'subscribe': return this.subscribe(page, args[0]);
      case 'waitForEvent': return this.waitForEvent(page, args[0], args[1]);
      // After a navigation of the script, a CAPTCHA on the page is solved or handed to a person before the script goes
      // on (helpers.solveCaptcha, captcha.ts): the script never sees it.
      case 'goto': case 'reload': case 'goBack': case 'goForward': {
        const response = await this.invoke(page, m, args);
        await this.helpers.solveCaptcha(page);
        return response;
      }
      default: {
        const dot = m.indexOf('.');
        if (dot > 0) return this.invoke(m.startsWith('keyboard.') ? page.keyboard : page.mouse, m.slice(dot + 1), args);
        return this.invoke(page, m, args);
      }
    }
  }

  private async frameCall(frame: Frame, m: string, args: unknown[]): Promise<unknown> {
    if (m === 'childFrames') return frame.childFrames().map((f) => this.ref('Frame', f));
    if (m === 'parentFrame') return this.refOrNull('Frame', frame.parentFrame());
    if (m === 'navigations') return this.navigations(frame, args[0], args[1]);
    return this.invoke(frame, m, args);
  }

  /**
   * The URLs `frame` committed since the child's `afterSeq` (the child's waitForURL matches them; nothing here looks
   * at what it waits for): at once when there are any, else at its next navigation, or a TimeoutError after
   * `timeoutMs` (0: no timeout; the job's own deadline ends the wait). A negative `afterSeq` asks for the URL now.
   */
  private async navigations(frame: Frame, afterSeq: unknown, timeoutMs: unknown): Promise<{ seq: number; urls: string[] }> {
    if (typeof afterSeq !== 'number' || !Number.isSafeInteger(afterSeq)) throw new Error('navigations: bad sequence number');
    const timeout = typeof timeoutMs === 'number' && timeoutMs >= 0 ? timeoutMs : this.limits.timeoutMs;
    const log = this.navLog(frame);
    const since = () => ({ seq: log.seq, urls: log.recent.filter((e) => e.seq > afterSeq).map((e) => e.url) });
    if (afterSeq < 0) return { seq: log.seq, urls: [frame.url()] };
    if (log.seq > afterSeq) return since();
    await new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (e?: Error) => {
        clearTimeout(timer);
        log.wake.delete(wake);
        if (e) reject(e); else resolve();
      };
      const wake = () => {
        if (frame.page().isClosed()) done(new Error('Target page, context or browser has been closed'));
        else if (frame.isDetached()) done(new Error('Navigating frame was detached!'));
        else if (log.seq > afterSeq) done();
      };
      log.wake.add(wake);
      if (timeout > 0) {
        timer = setTimeout(() => {
          const e = new Error(`Timeout ${timeout}ms exceeded.`);
          e.name = 'TimeoutError';
          done(e);
        }, timeout);
      }
      wake();
    });
    return since();
  }

  private navLog(frame: Frame): NavLog {
    let log = this.navLogs.get(frame);
    if (log) return log;
    log = { seq: 0, recent: [], wake: new Set() };
    this.navLogs.set(frame, log);
    const page = frame.page();
    if (!this.navWatched.has(page)) {
      this.navWatched.add(page);
      const wakeAll = (f?: Frame) => {
        for (const [fr, l] of this.navLogs) if (fr.page() === page && (!f || fr === f)) for (const w of [...l.wake]) w();
      };
      page.on('framenavigated', (f) => {
        const l = this.navLogs.get(f);
        if (!l) return;
        l.seq++;
        l.recent.push({ seq: l.seq, url: f.url() });
        if (l.recent.length > NAV_LOG_KEEP) l.recent.shift();
        wakeAll(f);
      });
      page.on('framedetached', (f) => { wakeAll(f); this.navLogs.delete(f); });
      page.on('close', () => {
        wakeAll();
        for (const fr of [...this.navLogs.keys()]) if (fr.page() === page) this.navLogs.delete(fr);
      });
    }
    return log;
  }

  private async waitForEvent(page: Page, event: unknown, options: unknown): Promise<unknown> {
    if (typeof event !== 'string' || !Object.hasOwn(WAITABLE_EVENTS, event)) {
      throw new Error(`page.waitForEvent: one of ${Object.keys(WAITABLE_EVENTS).join(', ')}`);
    }
    const timeout = typeof (options as { timeout?: unknown } | undefined)?.timeout === 'number' ? (options as { timeout: number }).timeout : this.limits.timeoutMs;
    const value = await page.waitForEvent(event as 'load', { timeout });
    const kind = WAITABLE_EVENTS[event];
    return kind ? this.ref(kind, value as unknown as Page) : null;
  }

  private subscribe(page: Page, event: unknown): null {
    if (typeof event !== 'string' || !Object.hasOwn(PAGE_EVENTS, event)) throw new Error(`page.on: one of ${Object.keys(PAGE_EVENTS).join(', ')}`);
    const id = this.ids.get(page)!;
    const key = `${id}:${event}`;
    if (this.subscribed.has(key)) return null;
    this.subscribed.add(key);
    const kind = PAGE_EVENTS[event]!;
    page.on(event as 'dialog', (value: Dialog) => {
      this.send({ t: 'event', h: id, e: event, v: this.ref(kind, value) });
    });
    return null;
  }

  private async helperCall(helpers: ScriptHelpers, m: string, args: unknown[]): Promise<unknown> {
    switch (m) {
      case 'screenshot': return helpers.screenshot(args[0] as { fullPage?: boolean } | undefined);
      case 'fillSecret': return helpers.fillSecret(String(args[0]), String(args[1]));
      case 'fillTotp': return helpers.fillTotp(String(args[0]), String(args[1]));
      case 'extract': {
        // A third argument scopes the rows to a locator (a forEach row); decode() made it a Locator of this job.
        const within = args[2] === undefined ? undefined : (args[2] as Locator | null);
        if (within !== undefined && (within === null || !isLocator(within))) throw new Error('helpers.extract: the third argument must be a locator');
        if (args[0] === null && !within) throw new Error('helpers.extract: pass a selector');
        return helpers.extract(args[0] === null ? null : String(args[0]), args[1] as Record<string, string>, within);
      }
      case 'fetch': return helpers.fetch(String(args[0]), options(args[1]) as FetchOptions | undefined);
      case 'solveCaptcha': return helpers.solveCaptcha();
      case 'detectBlocker': return helpers.detectBlocker();
      case 'handoff': {
        const o = args[1] as { timeoutMs?: unknown } | undefined;
        return helpers.handoff(String(args[0]), o && typeof o === 'object' && o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs as number } : undefined);
      }
      case 'expectDownload': {
        if (this.downloads.size >= 8) throw new Error('helpers.download: at most 8 downloads can be awaited at once');
        const id = this.nextWaiter++;
        const waiting = helpers.waitForDownload(this.limits.timeoutMs);
        waiting.catch(() => {});
        this.downloads.set(id, waiting);
        return id;
      }
      case 'saveDownload': {
        const waiting = this.downloads.get(args[0] as number);
        if (!waiting) throw new Error('helpers.download: no such download');
        this.downloads.delete(args[0] as number);
        return helpers.saveDownload(await waiting, options(args[1]) as { saveAs?: string } | undefined);
      }
      default: this.downloads.delete(args[0] as number); return null;
    }
  }
}

/** An options argument: an object of data, or nothing. */
function options(v: unknown): Record<string, unknown> | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new Error('options must be an object');
  return v as Record<string, unknown>;
}

/** What decode() makes of a `$loc` argument: a Playwright Locator (it has locator() and evaluateAll()). */
function isLocator(v: unknown): v is Locator {
  return typeof (v as { evaluateAll?: unknown }).evaluateAll === 'function' && typeof (v as { locator?: unknown }).locator === 'function';
}

/**
 * The frame name of page.frame: a name, or `{ name }`. A `{ url }` matcher is the child's to match (it never reaches
 * Playwright here, whose `page.frame({ url })` would run the script's glob or RegExp on the worker's event loop).
 */
function frameName(selector: unknown): string {
  const name = typeof selector === 'string' ? selector : (selector as { name?: unknown } | null)?.name;
  if (typeof name !== 'string' || !name) throw new Error('page.frame: the worker takes a frame name here; a { url } is matched by the script\'s own process');
  return name;
}

/**
 * What a Playwright call returned, as data for the script: JSON values as they are; a navigation's Response as
 * `{ $resp: { url, status, ok } }` (child.ts gives it url()/status()/ok()); any other object (an element or JS
 * handle from waitForSelector / waitForFunction) is released and becomes null — handles do not leave the worker.
 */
function toData(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(toData);
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto === Object.prototype || proto === null) return v;
  const r = v as { url?: unknown; status?: unknown; ok?: unknown; dispose?: unknown };
  if (typeof r.url === 'function' && typeof r.status === 'function' && typeof r.ok === 'function') {
    return { $resp: { url: (r.url as () => string)(), status: (r.status as () => number)(), ok: (r.ok as () => boolean)() } };
  }
  if (typeof r.dispose === 'function') void Promise.resolve((r.dispose as () => unknown).call(v)).catch(() => {});
  return null;
}

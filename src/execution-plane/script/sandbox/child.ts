/**
 * The sandbox child: a Node process of its own per job (process.ts starts it inside bubblewrap namespaces, under
 * Node's permission model, with CPU and memory limits). It compiles the script in a fresh vm context and gives it
 * facades of page, helpers and frames whose every method is a message to the worker (host.ts). The child holds
 * nothing worth stealing — no environment, no files, no network, no Redis — so the vm context here is only tidiness;
 * the process and its namespaces are the boundary.
 *
 * Bundled by esbuild (runner.ts) into one ES module run with `node --eval`: it imports node: builtins and the data in
 * methods.ts only.
 */
import { createInterface } from 'node:readline';
import vm from 'node:vm';
import { BUILDERS, CALLS, MATCHED_IN_CHILD, PAGE_EVENTS, takesFunction, type Kind, type LocatorKind } from './methods.ts';
import type { FromChild, HandleRef, Step, ToChild } from './protocol.ts';
import { urlMatcher } from './url-match.ts';

const MODULE_HOLDER = '__sriModule';

function send(m: FromChild): void {
  process.stdout.write(`${JSON.stringify(m)}\n`);
}

// ── Calls to the host ─────────────────────────────────────────────────────────────────────────────────────────────
let nextId = 1;
const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
/** Each page's URL as of the host's last answer: `page.url()` is synchronous in Playwright and stays so here. */
const urls = new Map<number, string>();

function encode(v: unknown, depth = 0): unknown {
  if (depth > 32) throw new TypeError('argument nested too deeply');
  if (v === undefined) return { $u: 1 };
  if (v instanceof RegExp || Object.prototype.toString.call(v) === '[object RegExp]') {
    const re = v as RegExp;
    return { $re: [re.source, re.flags] };
  }
  if (typeof v === 'function') throw new TypeError('functions can only be passed to evaluate, evaluateAll, waitForFunction, $eval and $$eval (as their page function)');
  if (typeof v === 'bigint' || typeof v === 'symbol') throw new TypeError(`a ${typeof v} cannot be passed to the page`);
  if (v !== null && typeof v === 'object') {
    const loc = locatorOf.get(v);
    if (loc) return { $loc: loc };
    if (Array.isArray(v)) return v.map((x) => encode(x, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = encode(x, depth + 1);
    return out;
  }
  return v;
}

function call(h: number, m: string, args: unknown[], c?: Step[]): Promise<unknown> {
  let a: unknown[];
  try {
    a = args.map((x, i) => (takesFunction(m, i) && typeof x === 'function' ? { $fn: String(x) } : encode(x)));
    while (a.length && (a[a.length - 1] as { $u?: number } | null)?.$u === 1) a.pop();
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new Error(String(e)));
  }
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    send({ t: 'call', id, h, m, a, ...(c ? { c } : {}) });
  });
}

// ── Facades ───────────────────────────────────────────────────────────────────────────────────────────────────────
const locatorOf = new WeakMap<object, { h: number; c: Step[] }>();
const handles = new Map<number, object>();

function decode(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(decode);
  if (v !== null && typeof v === 'object') {
    const ref = v as Partial<HandleRef>;
    if (typeof ref.$h === 'number' && typeof ref.k === 'string') return facadeOf(ref as HandleRef);
    const resp = (v as { $resp?: { url: string; status: number; ok: boolean } }).$resp;
    if (resp) return Object.freeze({ url: () => resp.url, status: () => resp.status, ok: () => resp.ok });
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, decode(x)]));
  }
  return v;
}

function addCalls(target: Record<string, unknown>, kind: Kind, h: number, chain?: Step[]): void {
  for (const m of CALLS[kind]) {
    const dot = m.indexOf('.');
    if (dot > 0) {
      const group = m.slice(0, dot);
      const sub = (target[group] ??= {}) as Record<string, unknown>;
      sub[m.slice(dot + 1)] = (...args: unknown[]) => call(h, m, args, chain);
    } else {
      target[m] = (...args: unknown[]) => call(h, m, args, chain).then(decode);
    }
  }
}

function locatorFacade(kind: LocatorKind, h: number, chain: Step[]): object {
  const f: Record<string, unknown> = {};
  addBuilders(f, kind, h, chain);
  addCalls(f, kind, h, chain);
  if (kind === 'Locator') {
    f['all'] = async () => {
      const n = await call(h, 'count', [], chain) as number;
      return Array.from({ length: n }, (_, i) => locatorFacade('Locator', h, [...chain, { m: 'nth', a: [i] }]));
    };
  }
  locatorOf.set(f, { h, c: chain });
  return Object.freeze(f);
}

function addBuilders(target: Record<string, unknown>, kind: keyof typeof BUILDERS, h: number, chain: Step[]): void {
  for (const [m, result] of Object.entries(BUILDERS[kind])) {
    target[m] = (...args: unknown[]) => locatorFacade(result, h, [...chain, { m, a: args.map((x) => encode(x)) }]);
  }
}

function facadeOf(ref: HandleRef): object {
  const known = handles.get(ref.$h);
  if (known) return known;
  const f: Record<string, unknown> = {};
  const h = ref.$h;
  const d = ref.d ?? {};
  if (ref.k === 'Page' || ref.k === 'Frame') {
    addBuilders(f, ref.k, h, []);
    addCalls(f, ref.k, h);
    const api = ref.k === 'Page' ? 'page' : 'frame';
    const local: Record<string, (...a: unknown[]) => Promise<unknown>> = {
      waitForURL: (match, options) => waitForURL(h, api, match, options),
      frame: (selector) => frameOf(h, selector),
    };
    for (const m of MATCHED_IN_CHILD[ref.k]) f[m] = local[m];
  } else {
    addCalls(f, ref.k, h);
  }
  if (ref.k === 'Page') {
    if (typeof d['url'] === 'string') urls.set(h, d['url']);
    f['url'] = () => urls.get(h) ?? 'about:blank';
    const listeners = new Map<string, Set<(x: unknown) => unknown>>();
    const on = (event: string, fn: (x: unknown) => unknown, once: boolean) => {
      if (!Object.hasOwn(PAGE_EVENTS, event)) throw new TypeError(`page.on: only ${Object.keys(PAGE_EVENTS).join(', ')} can be listened to`);
      if (typeof fn !== 'function') throw new TypeError('page.on: pass a function');
      let set = listeners.get(event);
      if (!set) {
        set = new Set();
        listeners.set(event, set);
        void call(h, 'subscribe', [event]).catch(() => {});
      }
      const wrapped = once ? (x: unknown) => { set.delete(wrapped); return fn(x); } : fn;
      set.add(wrapped);
      return f;
    };
    f['on'] = (event: string, fn: (x: unknown) => unknown) => on(event, fn, false);
    f['once'] = (event: string, fn: (x: unknown) => unknown) => on(event, fn, true);
    f['off'] = (event: string, fn: (x: unknown) => unknown) => { listeners.get(event)?.delete(fn); return f; };
    events.set(h, listeners);
  }
  if (ref.k === 'Dialog') {
    f['type'] = () => d['type'];
    f['message'] = () => d['message'];
    f['defaultValue'] = () => d['defaultValue'];
  }
  if (ref.k === 'Download') {
    f['suggestedFilename'] = () => d['suggestedFilename'];
    f['url'] = () => d['url'];
  }
  const frozen = Object.freeze(f);
  handles.set(h, frozen);
  return frozen;
}

const events = new Map<number, Map<string, Set<(x: unknown) => unknown>>>();

// ── URL patterns, matched here (methods.ts MATCHED_IN_CHILD) ─────────────────────────────────────────────────────
/** Default timeout of the script's waits (PLAYWRIGHT_TIMEOUT), from the start message. */
let defaultTimeoutMs = 30_000;

class TimeoutError extends Error {
  override name = 'TimeoutError';
}

interface Navigations { seq: number; urls: string[] }

/**
 * Playwright's waitForURL: resolves once the frame's URL — now, or at a navigation it commits later — matches, and
 * the load state `waitUntil` (default `load`) is reached. The host reports URLs; the match runs here.
 */
async function waitForURL(h: number, api: string, match: unknown, options: unknown): Promise<null> {
  const test = urlMatcher(match, `${api}.waitForURL`);
  const opts = (options ?? {}) as { timeout?: unknown; waitUntil?: unknown };
  const timeout = typeof opts.timeout === 'number' && opts.timeout >= 0 ? opts.timeout : defaultTimeoutMs;
  // timeout 0 means "no timeout" in Playwright; the job's EXECUTION_TIMEOUT still ends it.
  const deadline = timeout === 0 ? Infinity : Date.now() + timeout;
  const remaining = () => (deadline === Infinity ? 0 : Math.max(1, deadline - Date.now()));
  const timedOut = () => new TimeoutError(`${api}.waitForURL: Timeout ${timeout}ms exceeded.`);
  let nav = await call(h, 'navigations', [-1]) as Navigations;
  while (!nav.urls.some(test)) {
    if (Date.now() >= deadline) throw timedOut();
    try {
      nav = await call(h, 'navigations', [nav.seq, remaining()]) as Navigations;
    } catch (e) {
      throw (e as Error).name === 'TimeoutError' ? timedOut() : e;
    }
  }
  if (opts.waitUntil !== 'commit') await call(h, 'waitForLoadState', [opts.waitUntil ?? 'load', { timeout: remaining() }]);
  return null;
}

/** Playwright's page.frame(name | { name } | { url }): a name is compared by the host, a URL matcher here. */
async function frameOf(h: number, selector: unknown): Promise<unknown> {
  const sel = (typeof selector === 'string' ? { name: selector } : selector ?? {}) as { name?: unknown; url?: unknown };
  if (typeof sel.name === 'string' && sel.name) return decode(await call(h, 'frame', [{ name: sel.name }]));
  if (sel.url === undefined) throw new TypeError('page.frame: pass a frame name, { name } or { url }');
  const test = urlMatcher(sel.url, 'page.frame');
  const frames = await call(h, 'frames', []) as HandleRef[];
  const hit = frames.find((ref) => test(String(ref.d?.['url'] ?? '')));
  return hit ? facadeOf(hit) : null;
}

// ── Helper SDK (docs/scripts.md "Helper SDK"): waits with deadlines and the result builder live here, in the
// child, within its CPU limit; detectBlocker asks the host, which looks at the page.
/** Longest single helpers.sleep; a longer pause is a loop of them, bounded by the job's own timeout anyway. */
const MAX_SLEEP_MS = 5 * 60_000;

const sleep = (ms: number) => new Promise<void>((resolve) => { setTimeout(resolve, ms); });

function msOption(name: string, v: unknown, fallback: number, min = 0): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw new TypeError(`${name} must be a number of milliseconds ≥ ${min}`);
  return v;
}

/** A point in time a sequence of steps must finish by: `check` throws a TimeoutError once it has passed. */
function deadlineOf(ms: unknown): object {
  const budget = msOption('helpers.deadline(ms)', ms, defaultTimeoutMs);
  const at = Date.now() + budget;
  const remainingMs = () => Math.max(0, at - Date.now());
  const timedOut = (what: unknown) => new TimeoutError(`${typeof what === 'string' && what ? what : 'deadline'}: ${budget} ms deadline passed`);
  return Object.freeze({
    remainingMs,
    expired: () => remainingMs() === 0,
    check: (what?: unknown) => { if (remainingMs() === 0) throw timedOut(what); },
    /** `promise`, or a TimeoutError when the deadline comes first (the promise itself is not stopped). */
    race: (promise: unknown, what?: unknown) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(timedOut(what)), remainingMs());
      Promise.resolve(promise).then((v) => { clearTimeout(timer); resolve(v); }, (e: unknown) => { clearTimeout(timer); reject(e); });
    }),
  });
}

/** Calls `predicate` every `intervalMs` until it returns something truthy (returned), or throws TimeoutError. */
async function waitUntil(predicate: unknown, options: unknown): Promise<unknown> {
  if (typeof predicate !== 'function') throw new TypeError('helpers.waitUntil: pass a function, e.g. () => page.locator(sel).count()');
  const o = (options ?? {}) as { timeoutMs?: unknown; intervalMs?: unknown; message?: unknown };
  const timeoutMs = msOption('helpers.waitUntil timeoutMs', o.timeoutMs, defaultTimeoutMs);
  const intervalMs = msOption('helpers.waitUntil intervalMs', o.intervalMs, 250, 10);
  const at = Date.now() + timeoutMs;
  for (;;) {
    const v: unknown = await (predicate as () => unknown)();
    if (v) return v;
    const left = at - Date.now();
    if (left <= 0) throw new TimeoutError(`helpers.waitUntil: ${typeof o.message === 'string' && o.message ? o.message : 'the condition'} not met within ${timeoutMs} ms`);
    await sleep(Math.min(intervalMs, left));
  }
}

/** Result builders of this run: what a builder holds and has not committed is committed when the script ends. */
const builders = new Set<{ flush(): void }>();

function resultBuilder(fire: (m: string, args: unknown[]) => void): object {
  const data: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  let dirty = false;
  const key = (k: unknown) => {
    if (typeof k !== 'string' || !k || k === '__proto__') throw new TypeError('helpers.result(): keys are non-empty strings');
    return k;
  };
  const commit = () => {
    // A copy in JSON's terms, as setResult sends it: what the script changes later does not change it.
    const snapshot = JSON.parse(JSON.stringify(data)) as unknown;
    fire('setResult', [snapshot]);
    dirty = false;
    return snapshot;
  };
  const b = { flush: () => { if (dirty) commit(); } };
  builders.add(b);
  const api = Object.freeze({
    set: (k: unknown, v: unknown) => { data[key(k)] = v; dirty = true; return api; },
    push: (k: unknown, item: unknown) => {
      const list = data[key(k)];
      if (list !== undefined && !Array.isArray(list)) throw new TypeError(`helpers.result(): "${String(k)}" is not a list`);
      data[key(k)] = [...(list ?? []), item];
      dirty = true;
      return api;
    },
    warn: (text: unknown) => api.push('warnings', String(text)),
    get: () => JSON.parse(JSON.stringify(data)) as unknown,
    commit,
  });
  return api;
}

function flushResults(): void {
  for (const b of builders) {
    try {
      b.flush();
    } catch { /* a value JSON cannot hold: the script's own setResult would have thrown the same */ }
  }
}

function helpersFacade(h: number): object {
  const fire = (m: string, args: unknown[]) => { void call(h, m, args).catch(() => {}); };
  return Object.freeze({
    sleep: (ms: unknown) => sleep(Math.min(msOption('helpers.sleep(ms)', ms, 0), MAX_SLEEP_MS)),
    waitUntil,
    deadline: deadlineOf,
    result: () => resultBuilder(fire),
    detectBlocker: () => call(h, 'detectBlocker', []),
    log: (message: unknown) => fire('log', [String(message)]),
    setResult: (data: unknown) => {
      if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new TypeError('helpers.setResult: pass an object; its keys are merged into parsed-data.json');
      fire('setResult', [JSON.parse(JSON.stringify(data)) as unknown]);
    },
    screenshot: (opts?: unknown) => call(h, 'screenshot', [opts]),
    fillSecret: (selector: unknown, name: unknown) => call(h, 'fillSecret', [selector, name]),
    fillTotp: (selector: unknown, name: unknown) => call(h, 'fillTotp', [selector, name]),
    extract: (selector: unknown, fields: unknown, within?: unknown) => call(h, 'extract', within === undefined ? [selector, fields] : [selector, fields, within]),
    fetch: (url: unknown, opts?: unknown) => call(h, 'fetch', [url, opts]),
    handoff: (reason: unknown, opts?: unknown) => call(h, 'handoff', [reason, opts]),
    download: async (trigger: unknown, opts?: unknown) => {
      if (typeof trigger !== 'function') throw new TypeError('helpers.download: pass a function that starts the download, e.g. () => page.click(sel)');
      const waiter = await call(h, 'expectDownload', []);
      try {
        await (trigger as () => unknown)();
      } catch (e) {
        void call(h, 'forgetDownload', [waiter]).catch(() => {});
        throw e;
      }
      return call(h, 'saveDownload', [waiter, opts]);
    },
  });
}

// ── Running the script ────────────────────────────────────────────────────────────────────────────────────────────
function fail(kind: 'invalid' | 'timeout' | 'error', e: unknown): void {
  const err = e as { name?: unknown; message?: unknown } | null;
  const name = typeof err?.name === 'string' ? err.name : 'Error';
  const message = typeof err?.message === 'string' ? err.message : String(e);
  send({ t: 'fail', kind, name, message });
}

function isTimeout(e: unknown): boolean {
  return (e as { code?: string } | null)?.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT';
}

let HELPERS_HANDLE = 0;

async function start(m: Extract<ToChild, { t: 'start' }>): Promise<void> {
  HELPERS_HANDLE = m.helpers;
  defaultTimeoutMs = m.timeoutMs;
  const holder = Object.create(null) as { default?: unknown; args?: unknown };
  const sandbox = vm.createContext({ [MODULE_HOLDER]: holder }, { name: m.filename, codeGeneration: { strings: false, wasm: false } });
  vm.runInContext('delete globalThis.console', sandbox);
  let compiled: vm.Script;
  try {
    compiled = new vm.Script(m.code, { filename: m.filename });
  } catch (e) {
    fail('invalid', new Error(`The script does not compile: ${(e as Error).message}`));
    return;
  }
  try {
    compiled.runInContext(sandbox, { timeout: m.syncTimeoutMs });
    if (typeof holder.default !== 'function') {
      fail('invalid', new Error('The script\'s default export is not a function; export default async function run({ page, payload, helpers, context }) { ... }.'));
      return;
    }
    holder.args = Object.freeze({
      page: facadeOf(m.page), payload: m.payload, helpers: helpersFacade(m.helpers), context: Object.freeze(m.context),
    });
    const entry = new vm.Script(`${MODULE_HOLDER}.default(${MODULE_HOLDER}.args)`, { filename: `${m.filename}#entry` });
    await (entry.runInContext(sandbox, { timeout: m.syncTimeoutMs }) as unknown);
    flushResults();
    send({ t: 'done' });
  } catch (e) {
    // The evidence up to the failure is kept: so is what result builders held.
    flushResults();
    fail(isTimeout(e) ? 'timeout' : 'error', e);
  }
}

function onMessage(m: ToChild): void {
  if (m.t === 'start') {
    void start(m);
  } else if (m.t === 'res') {
    for (const [h, url] of Object.entries(m.u ?? {})) urls.set(Number(h), url);
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.ok) p.resolve(m.v);
    else {
      const e = new Error(m.e.message);
      e.name = m.e.name;
      p.reject(e);
    }
  } else if (m.t === 'event') {
    const set = events.get(m.h)?.get(m.e);
    for (const fn of [...(set ?? [])]) {
      try {
        const r = fn(decode(m.v));
        if (r && typeof (r as Promise<unknown>).catch === 'function') (r as Promise<unknown>).catch(() => {});
      } catch { /* a listener's own error is the script's business */ }
    }
  }
}

// An unawaited rejection in the script (a forgotten await) must not end the job: it goes to the job's log as a
// warning, and the script carries on — as it would in Playwright.
process.on('unhandledRejection', (e: unknown) => {
  const message = typeof (e as { message?: unknown } | null)?.message === 'string' ? (e as Error).message : String(e);
  void call(HELPERS_HANDLE, 'log', [`unhandled promise rejection in the script (a missing await?): ${message.split('\n')[0]}`]).catch(() => {});
});
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => onMessage(JSON.parse(line) as ToChild));
lines.on('close', () => process.exit(0));

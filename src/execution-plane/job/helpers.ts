/**
 * The `helpers` object scripts receive (docs/scripts.md; the step compiler emits calls to exactly these).
 * Downloads are streamed to the job's evidence store as each one finishes — byte for byte as the portal served them,
 * hashed on the way — so a job holds no download in memory; screenshots and parsed data are kept in JobArtifacts
 * and uploaded once by the pipeline, also when the script fails, so the evidence up to the failure is never lost.
 */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { storeHashed, type StoredFile } from './store-hashed.ts';
import type { Download, Locator, Page } from 'playwright-core';
import { isSriError, SriError } from '../../shared/errors.ts';
import type { ResultArtifact, ResultBlocker } from '../../shared/schemas.ts';
import { totpCode, type TotpSeed } from '../../shared/totp.ts';
import { detectBlocker, type Blocker } from './blocker.ts';
import type { BlockerWatch } from './blocker-watch.ts';
import { getPastCaptcha, inspectPage, type CaptchaKind, type CaptchaSolver } from './captcha.ts';
import { MAX_LINE_CHARS, type ExecutionLog } from './execution-log.ts';

export type ExtractField = string | { selector?: string; attribute?: string };

export interface ScriptHelpers {
  log(message: string): void;
  screenshot(opts?: { fullPage?: boolean }): Promise<string>;
  fillSecret(selector: string, name: string): Promise<void>;
  /** Types the current code of the connection's TOTP seed `name`; neither the seed nor the code reaches the script. */
  fillTotp(selector: string, name: string): Promise<void>;
  download(trigger: () => Promise<unknown>, opts?: DownloadOptions): Promise<{ name: string; size: number }>;
  /**
   * Rows of `selector` — on the page, or inside `within` (a forEach row) — as records of their fields; `selector` null
   * with `within`: the elements `within` matches are the rows.
   */
  extract(selector: string | null, fields: Record<string, ExtractField>, within?: Locator): Promise<Array<Record<string, string | null>>>;
  /**
   * An HTTP request made by the page (`fetch` in the page: through the job's egress policy, with the page's cookies
   * for its own origin); the response body is kept as evidence under `saveAs` when given. A status outside 200–299
   * fails with SCRIPT_ERROR.
   */
  fetch(url: string, opts?: FetchOptions): Promise<{ status: number; bytes: number; name?: string }>;
  setResult(data: Record<string, unknown>): void;
  /**
   * Hands the page to a person (the dashboard's live view) and resolves when they press "Done"; "Give up" fails the
   * job with HANDOFF_ABANDONED, no answer within `timeoutMs` with HANDOFF_TIMEOUT (job/handoff.ts).
   */
  handoff(reason: string, opts?: { timeoutMs?: number }): Promise<void>;
  /**
   * Gets past a CAPTCHA on the page, if it shows one (captcha.ts): the configured solver's answer (CAPTCHA_SOLVER),
   * else a hand-off to a person. The worker calls it itself after each navigation of the script (goto, reload,
   * goBack, goForward); a script calls it after an action that lands on a CAPTCHA another way (a form that answers
   * with one). `page` is for the sandbox host: the page that navigated.
   */
  solveCaptcha(page?: Page): Promise<{ outcome: 'none' | 'solved' | 'handed-off'; kind?: CaptchaKind | 'otp' }>;
  /** What blocks the page, if anything: CAPTCHA, rate limit, maintenance, access denied, login wall (blocker.ts). */
  detectBlocker(): Promise<Blocker | null>;
  /** For the sandbox host (script/sandbox/host.ts), which splits download() around the script's trigger. */
  waitForDownload(timeoutMs: number): Promise<Download>;
  saveDownload(download: Download, opts?: DownloadOptions): Promise<{ name: string; size: number }>;
  /**
   * For the sandbox host: called before each page action that may send requests (PACED_ACTIONS in host.ts); waits
   * while the provider's requests-per-minute budget is spent (gate-step.ts ProviderRequestPacer).
   */
  beforeAction(): Promise<void>;
}

export interface DownloadOptions {
  /** The evidence file's name (sanitised like a portal's); @default the name the portal suggests */
  saveAs?: string;
}

export const FETCH_METHODS: readonly string[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
export interface FetchOptions {
  /** @default GET */
  method?: string;
  body?: string;
  contentType?: string;
  saveAs?: string;
}

/** Largest request body helpers.fetch sends, and largest response it reads (WORKER_MAX_DOWNLOAD_BYTES too). */
export const MAX_FETCH_BODY_BYTES = 1024 * 1024;
export const MAX_FETCH_RESPONSE_BYTES = 16 * 1024 * 1024;

/** What one job may produce (WORKER_MAX_SCREENSHOTS, WORKER_MAX_DOWNLOADS, WORKER_MAX_DOWNLOAD_BYTES). */
export interface EvidenceLimits {
  readonly maxScreenshots: number;
  readonly maxDownloads: number;
  readonly maxDownloadBytes: number;
}

export interface Artifact { name: string; body: Buffer; contentType: string }

/** Where evidence goes as it is produced: the job's prefix in the results bucket (pipeline.ts). */
export interface EvidenceStore {
  /** Stores `body` (read as it arrives) under `name`; resolves with its `s3://` URI. `signal` aborts the upload. */
  put(name: string, body: Readable, contentType: string, signal: AbortSignal): Promise<string>;
}

/** Longest a download may take to store: a base, plus a second per MiB (a slow S3 still takes a large file). */
export const DOWNLOAD_STORE_BASE_MS = 60_000;

/** What a script may write with helpers.log per job (characters); later lines are counted, not kept. */
export const MAX_SCRIPT_LOG_CHARS = 4 * 1024 * 1024;
/** Largest parsed-data.json a job may build with helpers.setResult (bytes of JSON). */
export const MAX_PARSED_DATA_BYTES = 16 * 1024 * 1024;

/** What a job produced, in the order it was produced. */
export class JobArtifacts {
  /** In memory until the job ends (at most WORKER_MAX_SCREENSHOTS of them). */
  readonly screenshots: Artifact[] = [];
  /** Already stored, as they finished. */
  readonly downloads: ResultArtifact[] = [];
  parsedData: Record<string, unknown> | undefined;
  /** Downloads being stored: the pipeline waits for them before it reports the job. */
  readonly storing = new Set<Promise<unknown>>();
  /** The first download that could not be stored: the job fails with UPLOAD_FAILED, even if the script caught it. */
  storeError: Error | undefined;
  /** Selectors fillSecret filled: every screenshot of the job masks what they match (docs/security.md). */
  readonly secretFields = new Set<string>();
  /** What the page showed when the job failed (failure-screenshot.png, failure-page.html), taken by the pipeline. */
  readonly failure: Artifact[] = [];
  /** The job's trace.zip and video.webm, already stored (recording.ts), when its flow or run asked for them. */
  readonly recordings: ResultArtifact[] = [];
  /** The last blocker the worker classified (blocker-watch.ts): the result's `blocker`. */
  blocker: ResultBlocker | undefined;
}

/** Names the pipeline writes itself; a download never takes one of them. */
const RESERVED = /^(execution\.log|parsed-data\.json|screenshot-\d+\.png|failure-screenshot\.png|failure-page\.html|trace\.zip|video\.webm)$/i;

/** A download's suggested name reduced to a safe object name: no path, no odd characters, no leading dots. */
export function sanitizeFileName(suggested: string): string {
  let name = basename(suggested.replace(/\\/g, '/'))
    .normalize('NFKD').replace(/[\u0300-\u036f]/g, '')
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .replace(/^[._]+/, '')
    .replace(/_+(\.[A-Za-z0-9]+)$/, '$1');
  if (name.length > 150) {
    const ext = /\.[A-Za-z0-9]{1,10}$/.exec(name)?.[0] ?? '';
    name = name.slice(0, 150 - ext.length) + ext;
  }
  if (!name) name = 'download';
  if (RESERVED.test(name)) name = `download-${name}`;
  return name;
}

const CONTENT_TYPES: Record<string, string> = {
  pdf: 'application/pdf', csv: 'text/csv', txt: 'text/plain', json: 'application/json', xml: 'application/xml',
  zip: 'application/zip', png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', html: 'text/html',
  xls: 'application/vnd.ms-excel', xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
};

export function contentTypeOf(name: string): string {
  return CONTENT_TYPES[/\.([A-Za-z0-9]+)$/.exec(name)?.[1]?.toLowerCase() ?? ''] ?? 'application/octet-stream';
}

/**
 * Runs in the page: every element matching the selector is a row (see ScriptHelpers.extract). Written as source
 * text and turned into a function here, because the TypeScript loader decorates functions in this file with
 * helpers (`__name`) that do not exist in the page; Playwright sends a function's source, a string it would
 * evaluate as an expression instead of calling. This is our own constant, never script input.
 */
const EXTRACT_IN_PAGE = new Function(`return (rows, fields) => rows.map((row) => {
  const out = {};
  const text = (el) => (el.textContent ?? '').trim();
  for (const [key, spec] of Object.entries(fields)) {
    if (typeof spec === 'string') {
      const el = row.querySelector(spec);
      out[key] = el ? text(el) : null;
    } else {
      const el = spec.selector ? row.querySelector(spec.selector) : row;
      out[key] = !el ? null : spec.attribute ? el.getAttribute(spec.attribute) : text(el);
    }
  }
  return out;
})`)() as (rows: Element[], fields: Record<string, ExtractField>) => Array<Record<string, string | null>>;

/**
 * Runs in the page (for the same reason as EXTRACT_IN_PAGE, written as text): the page's own fetch — the browser's
 * network, so the job's egress proxy, its cookies for the page's origin and CORS apply as to the portal's scripts.
 * The body is read up to `max` bytes and returned as base64 (the evaluate result is JSON).
 */
const FETCH_IN_PAGE = new Function(`return async ({ url, method, body, contentType, max }) => {
  let res;
  try {
    res = await fetch(url, { method, body: body === null ? undefined : body, headers: contentType ? { 'content-type': contentType } : {}, credentials: 'same-origin', redirect: 'follow' });
  } catch (e) {
    return { error: String((e && e.message) || e) };
  }
  const head = { status: res.status, type: res.headers.get('content-type'), disposition: res.headers.get('content-disposition'), url: res.url };
  const declared = Number(res.headers.get('content-length') || 0);
  if (declared > max) { try { await res.body?.cancel(); } catch {} return { ...head, tooBig: declared }; }
  const chunks = [];
  let total = 0;
  if (res.body) {
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > max) { try { await reader.cancel(); } catch {} return { ...head, tooBig: total }; }
      chunks.push(value);
    }
  }
  let bin = '';
  for (const c of chunks) for (let i = 0; i < c.length; i += 0x8000) bin += String.fromCharCode.apply(null, c.subarray(i, i + 0x8000));
  return { ...head, data: btoa(bin) };
}`)() as (a: { url: string; method: string; body: string | null; contentType: string | null; max: number }) => Promise<FetchInPage>;

interface FetchInPage { error?: string; status?: number; type?: string | null; disposition?: string | null; url?: string; tooBig?: number; data?: string }

function checkFields(fields: unknown): Record<string, ExtractField> {
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) {
    throw new SriError('SCRIPT_ERROR', 'helpers.extract: fields must be an object of name → selector or { selector?, attribute? }');
  }
  const out: Record<string, ExtractField> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v === 'string') out[k] = v;
    else if (typeof v === 'object' && v !== null && ['selector', 'attribute'].every((p) => (v as Record<string, unknown>)[p] === undefined || typeof (v as Record<string, unknown>)[p] === 'string')) {
      const spec = v as { selector?: string; attribute?: string };
      out[k] = { ...(spec.selector !== undefined ? { selector: spec.selector } : {}), ...(spec.attribute !== undefined ? { attribute: spec.attribute } : {}) };
    } else {
      throw new SriError('SCRIPT_ERROR', `helpers.extract: field "${k}" must be a selector or { selector?, attribute? }`);
    }
  }
  return out;
}

/** A download's URL whose bytes did not cross the egress proxy: the page made the file itself (blob:, data:). */
export const isMadeInPage = (url: string) => !/^https?:/i.test(url);

export function createHelpers(opts: {
  page: Page;
  /** The job's hand-off (job/handoff.ts JobHandoff.request). @default refuses: no hand-off in this run */
  handoff?: (reason: string, o: { timeoutMs?: number }) => Promise<void>;
  /**
   * CAPTCHAs (captcha.ts): the worker's solver (undefined: CAPTCHA_SOLVER=none) and the hand-off a CAPTCHA it cannot
   * solve goes to. @default none: solveCaptcha finds nothing to do
   */
  captcha?: { solver: CaptchaSolver | undefined; signal: AbortSignal; handoff: (reason: string, source: 'captcha' | 'otp') => Promise<void> };
  /** The job's secrets over the session's credentials, by name; values never reach the script. */
  credentials: Readonly<Record<string, string>>;
  /** The session's TOTP seeds, by name; seeds and codes never reach the script. */
  totp?: Readonly<Record<string, TotpSeed>>;
  /**
   * Makes `value` one of the job's secrets from now on: the redactor replaces it in every log, error and result the
   * platform writes (a TOTP code, which exists only once fillTotp computes it).
   */
  protect?: (value: string) => void;
  /** The clock TOTP codes are computed on. @default Date.now */
  now?: () => number;
  exec: ExecutionLog;
  artifacts: JobArtifacts;
  timeoutMs: number;
  limits: EvidenceLimits;
  /** Where downloads are stored as they finish. */
  store: EvidenceStore;
  /**
   * Counts bytes that entered the job without crossing the egress proxy (a blob: or data: download) against the
   * job's byte budget (ProxyLease.charge); false once it is spent.
   */
  charge: (bytes: number) => boolean;
  /** Redacts text the platform writes from portal input: a download's object name (execution.log redacts itself). */
  redact: (text: string) => string;
  /** The provider's pacing of page actions (gate-step.ts). @default no wait */
  beforeAction?: () => Promise<void>;
  /**
   * The job's blocker classification (blocker-watch.ts): solveCaptcha takes the CAPTCHA from its look at the page, and
   * detectBlocker uses the provider's logged-out check. @default none: both look at the page themselves
   */
  blockers?: BlockerWatch;
}): ScriptHelpers {
  const { page, exec, artifacts } = opts;
  const usedNames = new Set<string>();
  const secretFields = artifacts.secretFields;
  let downloadsTaken = 0;
  let scriptLogChars = 0;
  const parsedSizes = new Map<string, number>();
  let parsedBytes = 2;
  let scriptLinesDropped = 0;

  /** `base`, or `base-1`, `base-2`… when the job already stored a file of that name. */
  function uniqueName(base: string): string {
    let name = base;
    for (let i = 1; usedNames.has(name); i++) name = base.replace(/(\.[^.]*)?$/, `-${i}$1`);
    usedNames.add(name);
    return name;
  }

  /** Streams `source` (`size` bytes) to the store under `name`, hashing it on the way, and lists it as evidence. */
  async function putEvidence(name: string, source: Readable, size: number, what: string): Promise<{ name: string; size: number; sha256: string }> {
    const contentType = contentTypeOf(name);
    const signal = AbortSignal.timeout(DOWNLOAD_STORE_BASE_MS + Math.ceil(size / (1024 * 1024)) * 1000);
    let stored: StoredFile;
    try {
      stored = await storeHashed(source, (body, sig) => opts.store.put(name, body, contentType, sig), signal);
    } catch (e) {
      const err = new SriError('UPLOAD_FAILED', `${what}: storing ${name} failed: ${(e as Error).message}`, { cause: e });
      artifacts.storeError ??= err;
      throw err;
    }
    artifacts.downloads.push({ name, kind: 'download', uri: stored.uri, bytes: stored.bytes, sha256: stored.sha256, contentType });
    return { name, size: stored.bytes, sha256: stored.sha256 };
  }

  /** Waits for the download to finish, checks its size, and streams it to the store as it was served. */
  async function storeDownload(download: Download, saveAs: string | undefined): Promise<{ name: string; size: number }> {
    const failure = await download.failure();
    if (failure) throw new SriError('SCRIPT_ERROR', `helpers.download: the download failed: ${failure}`);
    try {
      // The finished file in the browser's download folder: its size is known before a byte is stored.
      const size = (await stat(await download.path())).size;
      if (size > opts.limits.maxDownloadBytes) {
        throw new SriError('SCRIPT_RESOURCE_LIMIT', `helpers.download: the file is ${size} bytes, over WORKER_MAX_DOWNLOAD_BYTES (${opts.limits.maxDownloadBytes}); it was not kept.`);
      }
      // Network downloads were counted by the egress proxy as they arrived; a file the page made (blob:, data:)
      // crossed no proxy and is counted here, against the same budget.
      if (isMadeInPage(download.url()) && !opts.charge(size)) {
        throw new SriError('SCRIPT_RESOURCE_LIMIT', `helpers.download: the file the page made (${size} bytes) is over the job's byte budget (WORKER_EGRESS_MAX_BYTES); it was not kept.`);
      }
      const name = uniqueName(sanitizeFileName(opts.redact(saveAs ?? download.suggestedFilename())));
      const stored = await putEvidence(name, await download.createReadStream(), size, 'helpers.download');
      exec.info(`download ${name} (${stored.size} bytes, sha256 ${stored.sha256})`);
      return { name, size: stored.size };
    } catch (e) {
      if (isSriError(e)) throw e;
      throw new SriError('SCRIPT_ERROR', `helpers.download: ${(e as Error).message.split('\n')[0]}`, { cause: e });
    } finally {
      await download.delete().catch(() => {});
    }
  }

  /** Checks helpers.fetch's arguments (the script is untrusted: the compiler's checks do not bind a hand-written one). */
  function fetchRequest(url: unknown, o: FetchOptions | undefined): { target: URL; method: string; body: string | null; contentType: string | null; saveAs: string | undefined } {
    const bad = (m: string) => new SriError('SCRIPT_ERROR', `helpers.fetch: ${m}`);
    let target: URL;
    try {
      target = new URL(String(url));
    } catch {
      throw bad('pass an absolute http(s) URL');
    }
    if (target.protocol !== 'http:' && target.protocol !== 'https:') throw bad(`only http and https URLs, got ${target.protocol}`);
    if (target.username || target.password) throw bad('URLs must not carry credentials');
    const method = typeof o?.method === 'string' ? o.method.toUpperCase() : 'GET';
    if (!FETCH_METHODS.includes(method)) throw bad(`method must be one of ${FETCH_METHODS.join(', ')}`);
    const body = o?.body ?? null;
    if (body !== null && typeof body !== 'string') throw bad('body must be a string');
    if (body !== null && method === 'GET') throw bad('a GET request has no body');
    if (body !== null && Buffer.byteLength(body) > MAX_FETCH_BODY_BYTES) throw bad(`the body is over ${MAX_FETCH_BODY_BYTES} bytes`);
    const contentType = o?.contentType ?? null;
    if (contentType !== null && (typeof contentType !== 'string' || contentType.length > 200 || /[\r\n]/.test(contentType))) throw bad('contentType must be a media type');
    const saveAs = o?.saveAs;
    if (saveAs !== undefined && (typeof saveAs !== 'string' || !saveAs)) throw bad('saveAs must be a file name');
    return { target, method, body, contentType, saveAs };
  }

  const helpers: ScriptHelpers = {
    log(message) {
      const text = String(message);
      scriptLogChars += Math.min(text.length, MAX_LINE_CHARS);
      if (scriptLogChars > MAX_SCRIPT_LOG_CHARS) {
        if (++scriptLinesDropped === 1) exec.warn(`the script logged more than ${MAX_SCRIPT_LOG_CHARS} characters; further helpers.log lines are not kept`);
        return;
      }
      exec.add('script', text);
    },

    async screenshot(o) {
      if (artifacts.screenshots.length >= opts.limits.maxScreenshots) {
        throw new SriError('SCRIPT_RESOURCE_LIMIT', `helpers.screenshot: the job already has ${opts.limits.maxScreenshots} screenshots (WORKER_MAX_SCREENSHOTS); it was stopped.`);
      }
      const name = `screenshot-${artifacts.screenshots.length}.png`;
      // Reserve the slot before the await, so two concurrent calls never get the same number.
      const slot: Artifact = { name, body: Buffer.alloc(0), contentType: 'image/png' };
      artifacts.screenshots.push(slot);
      try {
        // Fields that received a secret are painted over (Playwright's mask, #FF00FF) wherever they are on the
        // page now: a secret typed into a field that is not type=password would otherwise show in the pixels.
        const mask = [...secretFields].map((sel) => page.locator(sel));
        slot.body = await page.screenshot({ fullPage: o?.fullPage === true, timeout: opts.timeoutMs, ...(mask.length ? { mask } : {}) });
      } catch (e) {
        artifacts.screenshots.splice(artifacts.screenshots.indexOf(slot), 1);
        throw e;
      }
      exec.info(`screenshot ${name} (${slot.body.length} bytes${secretFields.size ? `, ${secretFields.size} secret field(s) masked` : ''})`);
      return name;
    },

    async fillSecret(selector, name) {
      const value = Object.hasOwn(opts.credentials, name) ? opts.credentials[name] : undefined;
      if (value === undefined) {
        throw new SriError('SCRIPT_ERROR', `helpers.fillSecret: no secret "${String(name)}": neither the job's secrets (PUT /api/secrets/{name}, referenced by the flow) nor the session's credentials (POST /api/providers/{id}/connect) have it.`);
      }
      // Remembered before the fill: a fill that fails half-way may still have typed part of the value.
      secretFields.add(String(selector));
      await page.fill(String(selector), value);
      exec.info(`filled secret "${String(name)}" into ${String(selector)}`);
    },

    async fillTotp(selector, name) {
      const seeds = opts.totp ?? {};
      const seed = Object.hasOwn(seeds, name) ? seeds[name] : undefined;
      if (seed === undefined) {
        throw new SriError('SCRIPT_ERROR', `helpers.fillTotp: no TOTP seed "${String(name)}" in the session; connect the provider with it (POST /api/providers/{id}/connect {totp: {"${String(name)}": "<base32 seed>"}}).`);
      }
      const code = totpCode(seed, (opts.now ?? Date.now)());
      // Redacted before it is typed: a page that echoes it, or an error that quotes it, is written after this.
      opts.protect?.(code);
      secretFields.add(String(selector));
      await page.fill(String(selector), code);
      exec.info(`filled TOTP code of "${String(name)}" into ${String(selector)}`);
    },

    async download(trigger, o) {
      if (typeof trigger !== 'function') throw new SriError('SCRIPT_ERROR', 'helpers.download: pass a function that starts the download, e.g. () => page.click(sel)');
      const [download] = await Promise.all([helpers.waitForDownload(opts.timeoutMs), trigger()]);
      return helpers.saveDownload(download, o);
    },

    waitForDownload(timeoutMs) {
      return page.waitForEvent('download', { timeout: timeoutMs });
    },

    async saveDownload(download, o) {
      const saveAs = (o as DownloadOptions | undefined)?.saveAs;
      if (saveAs !== undefined && (typeof saveAs !== 'string' || !saveAs)) throw new SriError('SCRIPT_ERROR', 'helpers.download: saveAs must be a file name');
      // Counted before any await, so downloads saved at once cannot all pass the limit.
      if (++downloadsTaken > opts.limits.maxDownloads) {
        await download.cancel().catch(() => {});
        throw new SriError('SCRIPT_RESOURCE_LIMIT', `helpers.download: the job already has ${opts.limits.maxDownloads} downloads (WORKER_MAX_DOWNLOADS); it was stopped.`);
      }
      const storing = storeDownload(download, saveAs);
      artifacts.storing.add(storing);
      try {
        return await storing;
      } finally {
        artifacts.storing.delete(storing);
      }
    },

    beforeAction: opts.beforeAction ?? (() => Promise.resolve()),

    async extract(selector, fields, within) {
      const spec = checkFields(fields);
      if (!within) {
        const rows = await page.$$eval(String(selector), EXTRACT_IN_PAGE, spec);
        exec.info(`extract ${String(selector)}: ${rows.length} row(s)`);
        return rows;
      }
      // Within a forEach row: the row itself (its fields), or rows under it. Not logged per row: a forEach over 200
      // rows would write 200 lines that say nothing new.
      return (selector === null ? within : within.locator(String(selector))).evaluateAll(EXTRACT_IN_PAGE, spec);
    },

    async fetch(url, o) {
      const req = fetchRequest(url, o);
      const shown = `${req.method} ${req.target.origin}${req.target.pathname}`;
      // Counted before any await, like downloads: a response kept as evidence is one of the job's files.
      if (req.saveAs !== undefined && ++downloadsTaken > opts.limits.maxDownloads) {
        throw new SriError('SCRIPT_RESOURCE_LIMIT', `helpers.fetch: the job already has ${opts.limits.maxDownloads} files (WORKER_MAX_DOWNLOADS); it was stopped.`);
      }
      const max = Math.min(opts.limits.maxDownloadBytes, MAX_FETCH_RESPONSE_BYTES);
      const r = await page.evaluate(FETCH_IN_PAGE, { url: req.target.href, method: req.method, body: req.body, contentType: req.contentType, max });
      if (r.error !== undefined) throw new SriError('SCRIPT_ERROR', `helpers.fetch: ${shown} failed in the page: ${r.error} (a host outside the job's allowed hosts, or another origin without CORS?)`);
      if (r.tooBig !== undefined) {
        throw new SriError('SCRIPT_RESOURCE_LIMIT', `helpers.fetch: the response of ${shown} is over ${max} bytes (WORKER_MAX_DOWNLOAD_BYTES); it was not kept.`);
      }
      const status = r.status ?? 0;
      const body = Buffer.from(r.data ?? '', 'base64');
      if (status < 200 || status > 299) throw new SriError('SCRIPT_ERROR', `helpers.fetch: ${shown} answered ${status}`);
      exec.info(`fetch ${shown}: ${status} (${body.length} bytes)`);
      if (req.saveAs === undefined) return { status, bytes: body.length };
      const name = uniqueName(sanitizeFileName(opts.redact(req.saveAs)));
      const storing = putEvidence(name, Readable.from([body]), body.length, 'helpers.fetch');
      artifacts.storing.add(storing);
      try {
        const stored = await storing;
        exec.info(`fetch saved ${name} (${stored.size} bytes, sha256 ${stored.sha256})`);
        return { status, bytes: stored.size, name };
      } finally {
        artifacts.storing.delete(storing);
      }
    },

    async detectBlocker() {
      const found = await detectBlocker(page, opts.blockers ? { loggedOut: opts.blockers.loggedOut } : {});
      exec.info(found ? `blocker: ${found.kind} at ${found.url} (${found.evidence})` : 'blocker: none seen');
      return found;
    },

    async solveCaptcha(target) {
      const c = opts.captcha;
      if (!c) return { outcome: 'none' };
      const on = target ?? page;
      // The look the navigation already started (one evaluate a navigation), which also records its blocker — unless
      // blocker detection is switched off (features.blockerWatch): then a look of its own that records nothing.
      const seen = (opts.blockers?.automatic ? (await opts.blockers.look(on))?.challenges : undefined) ?? await inspectPage(on);
      const r = await getPastCaptcha(on, { solver: c.solver, signal: c.signal, handoff: (reason) => c.handoff(reason, 'captcha'), log: (m) => exec.info(`captcha: ${m}`) }, seen.captcha);
      if (r.outcome !== 'none') return { outcome: r.outcome, kind: r.captcha.kind };
      // A one-time-code form and no TOTP seed to type its code with: a person types it (the connection's seeds, when
      // it has any, are the flow's to use with fill {totp}).
      if (seen.otpForm && Object.keys(opts.totp ?? {}).length === 0) {
        exec.info('otp: the page asks for a one-time code and the connection holds no TOTP seed; handing the page to a person');
        await c.handoff('The portal asks for a one-time code: type it in the live view, then press Done.', 'otp');
        return { outcome: 'handed-off', kind: 'otp' };
      }
      return { outcome: 'none' };
    },

    async handoff(reason, o) {
      if (!opts.handoff) throw new SriError('SCRIPT_ERROR', 'helpers.handoff: this run cannot hand off to a person.');
      const timeoutMs = (o as { timeoutMs?: unknown } | undefined)?.timeoutMs;
      if (timeoutMs !== undefined && typeof timeoutMs !== 'number') throw new SriError('SCRIPT_ERROR', 'helpers.handoff: timeoutMs must be a number of milliseconds.');
      await opts.handoff(String(reason), timeoutMs === undefined ? {} : { timeoutMs });
    },

    setResult(data) {
      if (typeof data !== 'object' || data === null || Array.isArray(data)) {
        throw new SriError('SCRIPT_ERROR', 'helpers.setResult: pass an object; its keys are merged into parsed-data.json');
      }
      // Through JSON, so only data (no functions, no page objects) reaches parsed-data.json.
      const copy = JSON.parse(JSON.stringify(data)) as Record<string, unknown>;
      // Size kept per key (its JSON), so each call costs what it adds, not the whole parsed data again.
      const added = Object.entries(copy).map(([k, v]) => [k, Buffer.byteLength(JSON.stringify(k)) + Buffer.byteLength(JSON.stringify(v)) + 2] as const);
      const bytes = added.reduce((n, [k, size]) => n - (parsedSizes.get(k) ?? 0) + size, parsedBytes);
      if (bytes > MAX_PARSED_DATA_BYTES) {
        throw new SriError('SCRIPT_RESOURCE_LIMIT', `helpers.setResult: the parsed data would be ${bytes} bytes, over ${MAX_PARSED_DATA_BYTES}; it was stopped.`);
      }
      for (const [k, size] of added) parsedSizes.set(k, size);
      parsedBytes = bytes;
      // Defined, not assigned: a "__proto__" key stays data; and in place, so many calls cost what each adds.
      const target = (artifacts.parsedData ??= {});
      for (const [k, v] of Object.entries(copy)) Object.defineProperty(target, k, { value: v, enumerable: true, writable: true, configurable: true });
    },
  };
  return Object.freeze(helpers);
}

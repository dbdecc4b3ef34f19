/**
 * The `helpers` object scripts receive (docs/scripts.md; the step compiler emits calls to exactly these).
 * Everything they produce is kept in JobArtifacts and uploaded once by the pipeline, also when the script fails,
 * so the evidence up to the failure is never lost.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Download, Page } from 'playwright-core';
import { SriError } from '../../shared/errors.ts';
import { MAX_LINE_CHARS, type ExecutionLog } from './execution-log.ts';

export type ExtractField = string | { selector?: string; attribute?: string };

export interface ScriptHelpers {
  log(message: string): void;
  screenshot(opts?: { fullPage?: boolean }): Promise<string>;
  fillSecret(selector: string, name: string): Promise<void>;
  download(trigger: () => Promise<unknown>): Promise<{ name: string; size: number }>;
  extract(selector: string, fields: Record<string, ExtractField>): Promise<Array<Record<string, string | null>>>;
  setResult(data: Record<string, unknown>): void;
  /** For the sandbox host (script/sandbox/host.ts), which splits download() around the script's trigger. */
  waitForDownload(timeoutMs: number): Promise<Download>;
  saveDownload(download: Download): Promise<{ name: string; size: number }>;
}

/** What one job may produce (WORKER_MAX_SCREENSHOTS, WORKER_MAX_DOWNLOADS, WORKER_MAX_DOWNLOAD_BYTES). */
export interface EvidenceLimits {
  readonly maxScreenshots: number;
  readonly maxDownloads: number;
  readonly maxDownloadBytes: number;
}

export interface Artifact { name: string; body: Buffer; contentType: string }

/** What a script may write with helpers.log per job (characters); later lines are counted, not kept. */
export const MAX_SCRIPT_LOG_CHARS = 4 * 1024 * 1024;
/** Largest parsed-data.json a job may build with helpers.setResult (bytes of JSON). */
export const MAX_PARSED_DATA_BYTES = 16 * 1024 * 1024;

/** What a job produced, in the order it was produced. */
export class JobArtifacts {
  readonly screenshots: Artifact[] = [];
  readonly downloads: Artifact[] = [];
  parsedData: Record<string, unknown> | undefined;
}

/** Names the pipeline writes itself; a download never takes one of them. */
const RESERVED = /^(execution\.log|parsed-data\.json|screenshot-\d+\.png)$/i;

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

export function createHelpers(opts: {
  page: Page;
  /** The job's secrets over the session's credentials, by name; values never reach the script. */
  credentials: Readonly<Record<string, string>>;
  exec: ExecutionLog;
  artifacts: JobArtifacts;
  timeoutMs: number;
  limits: EvidenceLimits;
}): ScriptHelpers {
  const { page, exec, artifacts } = opts;
  const usedNames = new Set<string>();
  let scriptLogChars = 0;
  const parsedSizes = new Map<string, number>();
  let parsedBytes = 2;
  let scriptLinesDropped = 0;

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
        slot.body = await page.screenshot({ fullPage: o?.fullPage === true, timeout: opts.timeoutMs });
      } catch (e) {
        artifacts.screenshots.splice(artifacts.screenshots.indexOf(slot), 1);
        throw e;
      }
      exec.info(`screenshot ${name} (${slot.body.length} bytes)`);
      return name;
    },

    async fillSecret(selector, name) {
      const value = Object.hasOwn(opts.credentials, name) ? opts.credentials[name] : undefined;
      if (value === undefined) {
        throw new SriError('SCRIPT_ERROR', `helpers.fillSecret: no secret "${String(name)}": neither the job's secrets (PUT /api/secrets/{name}, referenced by the flow) nor the session's credentials (POST /api/providers/{id}/connect) have it.`);
      }
      await page.fill(String(selector), value);
      exec.info(`filled secret "${String(name)}" into ${String(selector)}`);
    },

    async download(trigger) {
      if (typeof trigger !== 'function') throw new SriError('SCRIPT_ERROR', 'helpers.download: pass a function that starts the download, e.g. () => page.click(sel)');
      const [download] = await Promise.all([helpers.waitForDownload(opts.timeoutMs), trigger()]);
      return helpers.saveDownload(download);
    },

    waitForDownload(timeoutMs) {
      return page.waitForEvent('download', { timeout: timeoutMs });
    },

    async saveDownload(download) {
      if (artifacts.downloads.length >= opts.limits.maxDownloads) {
        await download.cancel().catch(() => {});
        throw new SriError('SCRIPT_RESOURCE_LIMIT', `helpers.download: the job already has ${opts.limits.maxDownloads} downloads (WORKER_MAX_DOWNLOADS); it was stopped.`);
      }
      const failure = await download.failure();
      if (failure) throw new SriError('SCRIPT_ERROR', `helpers.download: the download failed: ${failure}`);
      const path = await download.path();
      const size = (await stat(path)).size;
      if (size > opts.limits.maxDownloadBytes) {
        await download.delete().catch(() => {});
        throw new SriError('SCRIPT_RESOURCE_LIMIT', `helpers.download: the file is ${size} bytes, over WORKER_MAX_DOWNLOAD_BYTES (${opts.limits.maxDownloadBytes}); it was not kept.`);
      }
      const body = await readFile(path);
      await download.delete().catch(() => {});
      const base = sanitizeFileName(download.suggestedFilename());
      let name = base;
      for (let i = 1; usedNames.has(name); i++) name = base.replace(/(\.[^.]*)?$/, `-${i}$1`);
      usedNames.add(name);
      artifacts.downloads.push({ name, body, contentType: contentTypeOf(name) });
      exec.info(`download ${name} (${body.length} bytes)`);
      return { name, size: body.length };
    },

    async extract(selector, fields) {
      const rows = await page.$$eval(String(selector), EXTRACT_IN_PAGE, checkFields(fields));
      exec.info(`extract ${String(selector)}: ${rows.length} row(s)`);
      return rows;
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

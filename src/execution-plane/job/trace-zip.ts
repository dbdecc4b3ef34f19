/**
 * Cleans a Playwright trace (trace.zip) before it is kept as evidence (recording.ts, docs/scripts.md "Recordings").
 *
 * What Playwright puts in a trace of `tracing.start({ screenshots: true, snapshots: true, sources: false })`
 * (playwright-core 1.65, server/trace/recorder/tracing.ts):
 * - `trace.trace`: JSON lines — the context's options, every API call with its parameters (`before`: a `fill` carries
 *   the typed text), its result (`after`), log lines, console messages, page errors, screencast frame events, and DOM
 *   snapshots (`frame-snapshot`: the page's HTML tree, input values included);
 * - `trace.network`: JSON lines, one HAR entry per request of the context (`resource-snapshot`): URL, request and
 *   response headers — **the Cookie request header, Set-Cookie response headers** — `cookies` arrays, and references
 *   (`_sha1`) to the request body (`postData`, e.g. a login form's password) and response body kept as resources;
 * - `resources/*`: the bodies (HTML, CSS, images the page loaded) and the screencast frames (JPEG);
 * - `trace.stacks`: the worker's own call stacks (file names of the platform's code).
 *
 * This keeps what the page showed and removes what the worker sent: Cookie, Authorization and Set-Cookie headers and
 * the `cookies` arrays; request bodies (the `postData` and its resource); `trace.stacks`; the params and results of
 * cookie calls; and every job secret (session cookie values, credentials, the organisation's secrets, TOTP codes)
 * wherever it appears in a string of `trace.trace` or `trace.network` (`redact`, as in execution.log). Response
 * bodies and screencast frames are copied unchanged: they are the portal's pages as served and shown.
 *
 * The zip is read and written with JSZip, in memory, so callers bound its size first (WORKER_MAX_RECORDING_BYTES);
 * JSZip works in chunks between event-loop turns, never in one block. Entries that are not rewritten keep their
 * compressed bytes as Playwright stored them (JSZip reuses an entry's compressed data when its method is unchanged).
 */
import JSZip from 'jszip';

/** Request headers that carry the browser's credentials; response headers that set them. */
const SECRET_REQUEST_HEADERS = new Set(['cookie', 'authorization', 'proxy-authorization']);
const SECRET_RESPONSE_HEADERS = new Set(['set-cookie']);
/** API calls whose parameters or results are cookies. */
const COOKIE_METHODS = new Set(['addCookies', 'cookies', 'storageState', 'clearCookies']);
const REMOVED = '[removed]';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function redactStrings(v: Json, redact: (text: string) => string): Json {
  if (typeof v === 'string') return redact(v);
  if (Array.isArray(v)) return v.map((x) => redactStrings(x, redact));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, Json> = {};
    for (const [k, x] of Object.entries(v)) out[redact(k)] = redactStrings(x, redact);
    return out;
  }
  return v;
}

const isObject = (v: unknown): v is Record<string, Json> => v !== null && typeof v === 'object' && !Array.isArray(v);

function stripHeaders(headers: Json | undefined, names: Set<string>): Json | undefined {
  if (!Array.isArray(headers)) return headers;
  return headers.map((h) => (isObject(h) && typeof h['name'] === 'string' && names.has(h['name'].toLowerCase()) ? { ...h, value: REMOVED } : h));
}

/**
 * One HAR entry of trace.network: credentials and request bodies out. The resource files of dropped request bodies
 * are collected, and those of response bodies (which stay, also when a request body had the same bytes).
 */
function cleanNetworkLine(event: Json, droppedResources: Set<string>, keptResources: Set<string>): Json {
  if (!isObject(event) || !isObject(event['snapshot'])) return event;
  const snapshot = { ...event['snapshot'] };
  if (isObject(snapshot['request'])) {
    const request = { ...snapshot['request'] };
    const headers = stripHeaders(request['headers'], SECRET_REQUEST_HEADERS);
    if (headers !== undefined) request['headers'] = headers;
    if (Array.isArray(request['cookies'])) request['cookies'] = [];
    const postData = request['postData'];
    if (isObject(postData)) {
      if (typeof postData['_file'] === 'string') droppedResources.add(postData['_file']);
      if (typeof postData['_sha1'] === 'string') droppedResources.add(`resources/${postData['_sha1']}`);
    }
    delete request['postData'];
    snapshot['request'] = request;
  }
  if (isObject(snapshot['response'])) {
    const response = { ...snapshot['response'] };
    const headers = stripHeaders(response['headers'], SECRET_RESPONSE_HEADERS);
    if (headers !== undefined) response['headers'] = headers;
    if (Array.isArray(response['cookies'])) response['cookies'] = [];
    const content = response['content'];
    if (isObject(content) && typeof content['_file'] === 'string') keptResources.add(content['_file']);
    if (isObject(content) && typeof content['_sha1'] === 'string') keptResources.add(`resources/${content['_sha1']}`);
    snapshot['response'] = response;
  }
  return { ...event, snapshot };
}

/** One event of trace.trace: the params and results of cookie calls out. */
function cleanTraceLine(event: Json, cookieCalls: Set<string>): Json {
  if (!isObject(event)) return event;
  const callId = typeof event['callId'] === 'string' ? event['callId'] : undefined;
  if (event['type'] === 'before' && callId && typeof event['method'] === 'string' && COOKIE_METHODS.has(event['method'])) {
    cookieCalls.add(callId);
    return { ...event, params: {} };
  }
  if (event['type'] === 'after' && callId && cookieCalls.has(callId)) {
    const { result: _result, ...rest } = event;
    return rest;
  }
  return event;
}

function rewriteLines(text: string, clean: (event: Json) => Json, redact: (text: string) => string): string {
  return text.split('\n').map((line) => {
    if (!line.trim()) return line;
    try {
      return JSON.stringify(redactStrings(clean(JSON.parse(line) as Json), redact));
    } catch {
      return redact(line);
    }
  }).join('\n');
}

/**
 * The trace with credentials, request bodies, stacks and the job's secrets removed (see the file comment). Throws
 * when `zip` is no zip Playwright would write; the caller then keeps no trace.
 */
export async function cleanTrace(zip: Buffer, redact: (text: string) => string): Promise<{ zip: Buffer; removedResources: number }> {
  let archive: JSZip;
  try {
    archive = await JSZip.loadAsync(zip, { checkCRC32: true });
  } catch (e) {
    throw new Error(`not a zip file: ${(e as Error).message}`);
  }
  const entries = Object.values(archive.files).filter((f) => !f.dir);
  const dropped = new Set<string>();
  const kept = new Set<string>();
  const cookieCalls = new Set<string>();
  // The network files first: they name the request bodies to drop.
  for (const f of entries.filter((e) => e.name.endsWith('.network'))) {
    archive.file(f.name, rewriteLines(await f.async('string'), (ev) => cleanNetworkLine(ev, dropped, kept), redact), { compression: 'DEFLATE' });
  }
  for (const name of kept) dropped.delete(name);
  for (const f of entries) {
    if (f.name.endsWith('.stacks') || dropped.has(f.name)) archive.remove(f.name);
    else if (f.name.endsWith('.trace')) archive.file(f.name, rewriteLines(await f.async('string'), (ev) => cleanTraceLine(ev, cookieCalls), redact), { compression: 'DEFLATE' });
  }
  const removedResources = [...dropped].filter((name) => entries.some((e) => e.name === name)).length;
  return { zip: await archive.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE', platform: 'UNIX' }), removedResources };
}

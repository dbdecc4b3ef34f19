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
 * The zip is read and written in memory, so callers bound its size first (WORKER_MAX_RECORDING_BYTES); the JSON
 * files are inflated and deflated asynchronously (libuv's pool), never on the worker's event loop in one block.
 */
import { promisify } from 'node:util';
import { crc32, deflateRaw, inflateRaw } from 'node:zlib';

const inflate = promisify(inflateRaw);
const deflate = promisify(deflateRaw);

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

interface ZipEntry {
  name: string;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  time: number;
  date: number;
  /** The entry's compressed bytes as stored. */
  data: Buffer;
}

/** The entries of a zip (no zip64, no encryption: what Playwright writes for a bounded trace). */
export function readZip(zip: Buffer): ZipEntry[] {
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === EOCD) { eocd = i; break; }
  }
  if (eocd < 0) throw new Error('not a zip file (no end of central directory)');
  const count = zip.readUInt16LE(eocd + 10);
  let p = zip.readUInt32LE(eocd + 16);
  if (count === 0xffff || p === 0xffffffff) throw new Error('zip64 archives are not supported');
  const entries: ZipEntry[] = [];
  for (let n = 0; n < count; n++) {
    if (zip.readUInt32LE(p) !== CENTRAL) throw new Error('corrupt zip central directory');
    const flags = zip.readUInt16LE(p + 8);
    const method = zip.readUInt16LE(p + 10);
    const compressedSize = zip.readUInt32LE(p + 20);
    const size = zip.readUInt32LE(p + 24);
    const nameLen = zip.readUInt16LE(p + 28);
    const extraLen = zip.readUInt16LE(p + 30);
    const commentLen = zip.readUInt16LE(p + 32);
    const local = zip.readUInt32LE(p + 42);
    if (flags & 1) throw new Error('encrypted zip entries are not supported');
    if (compressedSize === 0xffffffff || size === 0xffffffff || local === 0xffffffff) throw new Error('zip64 archives are not supported');
    if (method !== 0 && method !== 8) throw new Error(`zip compression method ${method} is not supported`);
    const name = zip.toString('utf8', p + 46, p + 46 + nameLen);
    if (zip.readUInt32LE(local) !== LOCAL) throw new Error(`corrupt zip entry ${name}`);
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    if (start + compressedSize > zip.length) throw new Error(`truncated zip entry ${name}`);
    entries.push({
      name, method, crc: zip.readUInt32LE(p + 16), compressedSize, size,
      time: zip.readUInt16LE(p + 12), date: zip.readUInt16LE(p + 14), data: zip.subarray(start, start + compressedSize),
    });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** A zip of `entries` (stored as given: the data is already compressed by `method`). */
export function writeZip(entries: readonly ZipEntry[]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const local = Buffer.alloc(30);
    local.writeUInt32LE(LOCAL, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names; sizes in this header (no data descriptor)
    local.writeUInt16LE(e.method, 8);
    local.writeUInt16LE(e.time, 10);
    local.writeUInt16LE(e.date, 12);
    local.writeUInt32LE(e.crc, 14);
    local.writeUInt32LE(e.data.length, 18);
    local.writeUInt32LE(e.size, 22);
    local.writeUInt16LE(name.length, 26);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(CENTRAL, 0);
    cd.writeUInt16LE(20, 4);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt16LE(0x0800, 8);
    cd.writeUInt16LE(e.method, 10);
    cd.writeUInt16LE(e.time, 12);
    cd.writeUInt16LE(e.date, 14);
    cd.writeUInt32LE(e.crc, 16);
    cd.writeUInt32LE(e.data.length, 20);
    cd.writeUInt32LE(e.size, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt32LE(offset, 42);
    parts.push(local, name, e.data);
    central.push(cd, name);
    offset += 30 + name.length + e.data.length;
  }
  const cdSize = central.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(EOCD, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cdSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, ...central, end]);
}

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

async function rewriteLines(e: ZipEntry, clean: (event: Json) => Json, redact: (text: string) => string): Promise<ZipEntry> {
  const raw = e.method === 8 ? await inflate(e.data) : e.data;
  const lines = raw.toString('utf8').split('\n').map((line) => {
    if (!line.trim()) return line;
    try {
      return JSON.stringify(redactStrings(clean(JSON.parse(line) as Json), redact));
    } catch {
      return redact(line);
    }
  });
  const text = Buffer.from(lines.join('\n'), 'utf8');
  return { ...e, method: 8, crc: crc32(text) >>> 0, size: text.length, data: await deflate(text), compressedSize: 0 };
}

/**
 * The trace with credentials, request bodies, stacks and the job's secrets removed (see the file comment). Throws
 * when `zip` is no zip Playwright would write; the caller then keeps no trace.
 */
export async function cleanTrace(zip: Buffer, redact: (text: string) => string): Promise<{ zip: Buffer; removedResources: number }> {
  const entries = readZip(zip);
  const dropped = new Set<string>();
  const kept = new Set<string>();
  const cookieCalls = new Set<string>();
  const out: ZipEntry[] = [];
  // The network files first: they name the request bodies to drop.
  const network = entries.filter((e) => e.name.endsWith('.network'));
  const cleaned = new Map<string, ZipEntry>();
  for (const e of network) cleaned.set(e.name, await rewriteLines(e, (ev) => cleanNetworkLine(ev, dropped, kept), redact));
  for (const name of kept) dropped.delete(name);
  for (const e of entries) {
    if (e.name.endsWith('.stacks') || dropped.has(e.name)) continue;
    if (e.name.endsWith('.network')) out.push(cleaned.get(e.name)!);
    else if (e.name.endsWith('.trace')) out.push(await rewriteLines(e, (ev) => cleanTraceLine(ev, cookieCalls), redact));
    else out.push(e);
  }
  return { zip: writeZip(out), removedResources: dropped.size };
}

/**
 * Where a webhook may be delivered, and the one POST of an attempt (ARCHITECTURE.md invariant 9: webhooks go only to
 * public addresses by default). A webhook URL is a tenant's say on where the API connects, so:
 *   - the host is resolved at delivery time, by the API, and every address it resolves to must be public (the
 *     classifier of the egress proxy, src/shared/net/address-class.ts); link-local and metadata addresses are never
 *     reached, loopback and private ones only with WEBHOOK_ALLOW_PRIVATE=true;
 *   - the connection goes to the addresses checked and to no other (a `lookup` that answers from the checked list):
 *     a DNS server that answers a public address for the check and 127.0.0.1 for the connection gets no second say;
 *   - redirects are not followed (a 3xx is a failed attempt), so a public receiver cannot bounce the POST inward;
 *   - at most `maxResponseBytes` of an answer are read, then the socket is destroyed: a receiver answering 400 MB
 *     costs the API 4 KiB, and nothing of what it said is kept — a delivery records a status and an error class.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { canonicalHost, classifyAddress, NEVER_REACHABLE, type AddressClass } from '../../shared/net/address-class.ts';

/** Addresses (IP literals) a host name resolves to. Injected by tests; the system resolver otherwise. */
export type Resolve = (host: string) => Promise<readonly string[]>;

export const systemResolve: Resolve = async (host) => (await dnsLookup(host, { all: true, verbatim: true })).map((a) => a.address);

/**
 * Why an attempt failed, as stored (docs/webhooks.md "What a delivery records"): a fixed vocabulary, never text from the receiver
 * or from a connection error (which would tell a caller what listens where).
 */
export const DELIVERY_ERROR_CLASSES = [
  'http-status', 'redirect', 'timeout', 'dns', 'target-refused', 'connect', 'tls', 'protocol', 'network', 'secret-unreadable',
] as const;
export type DeliveryErrorClass = (typeof DELIVERY_ERROR_CLASSES)[number];

export class DeliveryError extends Error {
  constructor(readonly errorClass: DeliveryErrorClass, readonly refused?: Exclude<AddressClass, 'public'>) {
    super(refused ? `${errorClass}: ${refused}` : errorClass);
    this.name = 'DeliveryError';
  }
}

const REFUSABLE: readonly Exclude<AddressClass, 'public'>[] = [
  'loopback', 'private', 'shared', 'link-local', 'metadata', 'unspecified', 'multicast', 'reserved',
];

/**
 * The form kept in webhook_deliveries.last_error: the class, and for `target-refused` the address class
 * (`target-refused:loopback`). Only these tokens are ever written there.
 */
export function storedError(errorClass: DeliveryErrorClass, refused?: Exclude<AddressClass, 'public'>): string {
  return refused ? `${errorClass}:${refused}` : errorClass;
}

const SENTENCES: Record<DeliveryErrorClass, string> = {
  'http-status': 'The receiver answered with a status outside 2xx (responseStatus); its answer is not kept. Check the receiver\'s own log.',
  redirect: 'The receiver answered with a redirect (responseStatus); redirects are not followed. Register the final URL.',
  timeout: 'No answer within WEBHOOK_TIMEOUT_MS; make the receiver acknowledge first and work afterwards.',
  dns: 'The webhook\'s host name did not resolve; check its DNS.',
  'target-refused': 'The webhook\'s host resolves to an address webhooks may not reach; use a host with public addresses only (WEBHOOK_ALLOW_PRIVATE=true on the API allows loopback and private ones, never link-local or metadata ones).',
  connect: 'The connection to the receiver was refused, reset or could not be made; check that it is up and reachable from the internet.',
  tls: 'The TLS handshake with the receiver failed (certificate not valid for its host, expired, or not trusted).',
  protocol: 'The receiver\'s answer was not valid HTTP.',
  network: 'The attempt failed on the network, or was stopped when the API shut down.',
  'secret-unreadable': 'The webhook\'s secret cannot be decrypted (JWT_SECRET changed?); create the webhook again.',
};

/**
 * What the API shows of a stored last_error: its class, the refused address class, and a sentence made here.
 * Anything else in the column (rows of a version that kept the receiver's text) is shown as `unknown`, never as text.
 */
export function describeStoredError(stored: string | null): { errorClass: DeliveryErrorClass | 'unknown' | null; refusedAddressClass: string | null; lastError: string | null } {
  if (stored === null) return { errorClass: null, refusedAddressClass: null, lastError: null };
  const [cls, refused] = stored.split(':', 2) as [string, string | undefined];
  const known = (DELIVERY_ERROR_CLASSES as readonly string[]).includes(cls) ? cls as DeliveryErrorClass : undefined;
  const refusedOk = refused === undefined || (known === 'target-refused' && (REFUSABLE as readonly string[]).includes(refused));
  if (!known || !refusedOk || stored.split(':').length > 2) {
    return { errorClass: 'unknown', refusedAddressClass: null, lastError: 'Recorded by an earlier version; its text is no longer shown.' };
  }
  const sentence = refused ? SENTENCES[known].replace('an address webhooks may not reach', `an address webhooks may not reach (${refused})`) : SENTENCES[known];
  return { errorClass: known, refusedAddressClass: refused ?? null, lastError: sentence };
}

/** Why `address` may not receive webhooks, or undefined when it may. */
export function refuseAddress(address: string, allowPrivate: boolean): Exclude<AddressClass, 'public'> | undefined {
  const cls = classifyAddress(address);
  if (cls === 'public') return undefined;
  if (NEVER_REACHABLE.has(cls) || !allowPrivate) return cls;
  return undefined;
}

/**
 * What registration can tell without DNS: a URL whose host is an IP literal (any spelling: the URL parser has made
 * `2130706433` and `0x7f.1` into `127.0.0.1`) or `localhost` (and `*.localhost`, which resolve to loopback by
 * definition, RFC 6761) that may not receive webhooks. Names are checked at every delivery, after resolving them.
 */
export function refuseUrl(url: URL, allowPrivate: boolean): Exclude<AddressClass, 'public'> | undefined {
  const host = canonicalHost(url.hostname);
  if (host === undefined) return 'reserved';
  if (host === 'localhost' || host.endsWith('.localhost')) return allowPrivate ? undefined : 'loopback';
  return isIP(host) ? refuseAddress(host, allowPrivate) : undefined;
}

/**
 * The addresses a delivery to `url` may connect to: resolved now, every one of them allowed. Throws DeliveryError
 * `dns` (no address) or `target-refused` (any address refused: a name with one private address among public ones
 * is refused, as the egress proxy does, rather than tried on the public ones only).
 */
export async function checkedAddresses(url: URL, opts: { resolve: Resolve; allowPrivate: boolean; signal: AbortSignal }): Promise<readonly string[]> {
  const host = canonicalHost(url.hostname);
  if (host === undefined) throw new DeliveryError('target-refused', 'reserved');
  let addresses: readonly string[];
  if (isIP(host)) {
    addresses = [host];
  } else {
    try {
      addresses = await abortable(opts.resolve(host), opts.signal);
    } catch (err) {
      if (opts.signal.aborted) throw err;
      throw new DeliveryError('dns');
    }
    // Only IP literals are connected to below; anything else would be looked up again, unchecked.
    if (!addresses.length || addresses.some((a) => isIP(a) === 0)) throw new DeliveryError('dns');
  }
  for (const address of addresses) {
    const refused = refuseAddress(address, opts.allowPrivate);
    if (refused) throw new DeliveryError('target-refused', refused);
  }
  return addresses;
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** A `lookup` for the socket that answers with the checked addresses only, whatever name it is asked about. */
function pinnedLookup(addresses: readonly string[]): LookupFunction {
  const entries = addresses.map((address) => ({ address, family: isIP(address) }));
  return (_hostname, options, callback) => {
    const usable = options.family === 4 || options.family === 6 ? entries.filter((e) => e.family === options.family) : entries;
    if (!usable.length) {
      callback(Object.assign(new Error('no checked address of the requested family'), { code: 'ENOTFOUND' }), '', 0);
    } else if (options.all) {
      callback(null, usable);
    } else {
      callback(null, usable[0]!.address, usable[0]!.family);
    }
  };
}

export interface PostOptions {
  url: URL;
  /** From checkedAddresses: the only addresses connected to. */
  addresses: readonly string[];
  headers: Record<string, string>;
  body: string;
  /** Aborts the attempt (its deadline, the deliverer closing). */
  signal: AbortSignal;
  /** Bytes of the answer's body read before the socket is destroyed. */
  maxResponseBytes: number;
}

/** Error codes of a socket or TLS failure → class. */
function classOf(err: NodeJS.ErrnoException, signal: AbortSignal): DeliveryErrorClass {
  if (signal.aborted) return (signal.reason as Error | undefined)?.name === 'TimeoutError' ? 'timeout' : 'network';
  const code = err.code ?? '';
  if (['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EADDRNOTAVAIL', 'EPIPE'].includes(code)) return 'connect';
  if (code === 'ENOTFOUND') return 'dns';
  if (code.startsWith('HPE_') || code === 'ERR_INVALID_HTTP_TOKEN') return 'protocol';
  if (/^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|ERR_OSSL)/.test(code) || /ssl|tls|certificate/i.test(err.message)) return 'tls';
  return 'network';
}

/**
 * POSTs once and resolves with the answer's status (any status: the caller decides what counts), having read at most
 * maxResponseBytes of its body; rejects with DeliveryError. Follows no redirect. The socket is destroyed when it
 * settles, so nothing of the answer is read after that.
 */
export function postOnce(opts: PostOptions): Promise<number> {
  const { url } = opts;
  const host = canonicalHost(url.hostname)!;
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  if (opts.signal.aborted) return Promise.reject(new DeliveryError(classOf(new Error('aborted'), opts.signal)));
  return new Promise<number>((resolve, reject) => {
    const req = request({
      protocol: url.protocol,
      host, // a name: TLS checks the certificate for it and sends it as SNI; the Host header carries it too
      port: url.port === '' ? undefined : Number(url.port),
      path: `${url.pathname}${url.search}`,
      method: 'POST',
      headers: { ...opts.headers, 'content-length': String(Buffer.byteLength(opts.body)) },
      lookup: pinnedLookup(opts.addresses),
      agent: false, // one connection per attempt: no pooled socket made for another address is reused
      maxHeaderSize: 16 * 1024,
      signal: opts.signal,
    });
    let settled = false;
    const finish = (outcome: { status: number } | { error: DeliveryError }) => {
      if (settled) return;
      settled = true;
      req.destroy();
      if ('status' in outcome) resolve(outcome.status);
      else reject(outcome.error);
    };
    req.on('response', (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      let read = 0;
      res.on('data', (chunk: Buffer) => {
        read += chunk.length;
        // The bytes are dropped as they come; over the cap the socket is cut so the receiver cannot keep sending.
        if (read >= opts.maxResponseBytes) finish({ status });
      });
      res.on('end', () => finish({ status }));
      res.on('close', () => finish({ status }));
      res.on('error', () => finish({ status }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => finish({ error: new DeliveryError(classOf(err, opts.signal)) }));
    req.on('close', () => finish({ error: new DeliveryError(classOf(new Error('socket closed'), opts.signal)) }));
    req.end(opts.body);
  });
}

/**
 * A filtering forward proxy on 127.0.0.1 that every job's browser context sends all its traffic through
 * (ARCHITECTURE.md invariant 5). Routing (host-guard.ts) alone is not enough: Playwright does not hand redirects
 * of a navigation to route handlers, nor the requests of workers, so `goto(allowed)` answered by
 * `302 Location: http://elsewhere/` would reach elsewhere. Through the proxy every connection — first request,
 * redirect, subresource, fetch, WebSocket (Chromium tunnels ws:// and wss:// with CONNECT), popup, worker — names
 * its host here, and here it is checked:
 * 1. the host (in its canonical URL form, egress-policy.ts) must match the job's hosts (its allowedHosts, or its
 *    provider's from the catalogue; a job with neither reaches nothing);
 * 2. the proxy resolves the host itself and refuses when any address is one the job may not reach (loopback,
 *    private, link-local/metadata…, unless allowedHosts names it: EgressPolicy.refuseAddress);
 * 3. it connects to the addresses it checked — no second lookup — so a DNS answer that changes between the check
 *    and the connection (rebinding) cannot lead to another address.
 * Each job gets its own proxy credentials (Basic auth, answered by Chromium per context), which select its rules
 * and its budget: bytes moved (both directions, all connections) and connections open at once. Over the byte
 * budget every connection of the lease is cut and further ones are refused; the lease says why (limitExceeded).
 * Unknown or missing credentials get 407 and reach nothing.
 */
import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import {
  createServer, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse,
} from 'node:http';
import { connect, isIP, type AddressInfo, type Socket } from 'node:net';
import { Transform } from 'node:stream';
import type { Logger } from '../../shared/logger.ts';
import { canonicalAddress, canonicalHost, classifyAddress, type EgressBlockReason, EgressPolicy, type HostPattern } from './egress-policy.ts';

/** All addresses of a host name, in the order to try them. Injected by tests (no DNS there). */
export type Resolve = (hostname: string) => Promise<readonly string[]>;

export const systemResolve: Resolve = async (hostname) => (await lookup(hostname, { all: true, verbatim: true })).map((a) => a.address);

/** Why a lease stopped carrying traffic: it moved more than its maxBytes. */
export type EgressLimit = 'egress-bytes';

export type OnBlocked = (host: string, reason: EgressBlockReason) => void;

export const DEFAULT_EGRESS_MAX_BYTES = 256 * 1024 * 1024;
export const DEFAULT_EGRESS_MAX_CONNECTIONS = 64;

export interface LeaseOptions {
  /**
   * Bytes the lease's connections may move, both directions together (payload of tunnels; heads and bodies of
   * plain-http requests). Past it every connection of the lease is cut and further ones are refused.
   * @default 268435456 (256 MiB)
   */
  readonly maxBytes?: number;
  /** Connections (tunnels, forwarded requests) open at once; more are refused with 503. @default 64 */
  readonly maxConnections?: number;
  /** Told once when the lease goes over a limit, after its connections were cut. Must not throw. */
  readonly onLimitExceeded?: (limit: EgressLimit) => void;
}

export interface ProxyLease {
  /** For `browser.newContext({ proxy })`. */
  readonly proxy: { server: string; username: string; password: string };
  /** The limit the lease went over, or undefined. Stays set after release. */
  limitExceeded(): EgressLimit | undefined;
  /** Bytes moved so far (see LeaseOptions.maxBytes), charged bytes included. */
  bytes(): number;
  /**
   * Counts `n` bytes that entered the job without crossing the proxy — a file the page made itself (a `blob:` or
   * `data:` download) — against the same budget; false, and every connection cut, once it is spent.
   */
  charge(n: number): boolean;
  /** Connections refused because maxConnections were open. */
  connectionsRefused(): number;
  /** Forgets the credentials and cuts every connection still open. */
  release(): void;
}

/** A lease made before its job: its credentials reach nothing until `arm` gives it the job's policy. */
export interface PreparedLease {
  readonly proxy: ProxyLease['proxy'];
  arm(policy: EgressPolicy, onBlocked: OnBlocked, opts?: LeaseOptions): ProxyLease;
  /** For a lease never armed (its context was dropped); an armed one is released through its ProxyLease. */
  release(): void;
}

export interface EgressProxyOptions {
  /** @default systemResolve (dns.lookup, all addresses) */
  readonly resolve?: Resolve;
  /** Longest a host name may take to resolve. @default 10000 */
  readonly resolveTimeoutMs?: number;
  /** Longest a connection to one address may take to open. @default 15000 */
  readonly connectTimeoutMs?: number;
  /**
   * The platform's own services as the worker reaches them (Redis, S3, the worker's HTTP port): no job's browser
   * may connect to them, whatever its allowedHosts say — a provider allowed on 127.0.0.1 must not reach the
   * embedded S3 (which serves every organisation's evidence) or Redis on the same machine. Resolved at start();
   * a loopback one covers every loopback address on its port.
   */
  readonly platformServices?: readonly { readonly host: string; readonly port: number }[];
}

/** host:port of a service URL (redis://, rediss://, http(s)://), with the scheme's default port. */
export function serviceOf(url: string): { host: string; port: number } | undefined {
  try {
    const u = new URL(url);
    const defaults: Record<string, number> = { 'redis:': 6379, 'rediss:': 6379, 'http:': 80, 'https:': 443 };
    const port = u.port ? Number(u.port) : defaults[u.protocol];
    return port === undefined || !u.hostname ? undefined : { host: u.hostname.replace(/^\[|\]$/g, ''), port };
  } catch {
    return undefined;
  }
}

interface Destroyable { destroy(): unknown }

class Lease {
  bytes = 0;
  active = 0;
  refused = 0;
  exceeded: EgressLimit | undefined;
  released = false;
  private readonly live = new Set<Destroyable>();

  /** Until `arm`: nothing is allowed and nothing is reported (a context prepared ahead has no job yet). */
  policy: EgressPolicy = new EgressPolicy([]);
  onBlocked: OnBlocked = () => {};
  private maxBytes = 0;
  private maxConnections = 0;
  private onLimit: ((limit: EgressLimit) => void) | undefined;

  constructor(readonly password: Buffer) {}

  /** Gives the lease its job's policy and limits; once only. */
  arm(policy: EgressPolicy, onBlocked: OnBlocked, opts: LeaseOptions): void {
    this.policy = policy;
    this.onBlocked = onBlocked;
    this.maxBytes = opts.maxBytes ?? DEFAULT_EGRESS_MAX_BYTES;
    this.maxConnections = opts.maxConnections ?? DEFAULT_EGRESS_MAX_CONNECTIONS;
    this.onLimit = opts.onLimitExceeded;
  }

  /** Counts `n` bytes; false — and every connection cut — once over the budget. */
  account(n: number): boolean {
    if (this.exceeded) return false;
    this.bytes += n;
    if (this.bytes <= this.maxBytes) return true;
    this.exceeded = 'egress-bytes';
    this.cut();
    this.onLimit?.(this.exceeded);
    return false;
  }

  /** Reserves a connection; false when maxConnections are open. */
  reserve(): boolean {
    if (this.active >= this.maxConnections) {
      this.refused++;
      return false;
    }
    this.active++;
    return true;
  }

  unreserve(): void {
    this.active--;
  }

  /** Keeps `parts` to be cut with the lease; the returned function (idempotent) frees the connection. */
  attach(parts: readonly Destroyable[]): () => void {
    for (const p of parts) this.live.add(p);
    let attached = true;
    return () => {
      if (!attached) return;
      attached = false;
      this.active--;
      for (const p of parts) this.live.delete(p);
    };
  }

  cut(): void {
    const parts = [...this.live];
    this.live.clear();
    for (const p of parts) p.destroy();
  }
}

/** Answers the client with an error; gives undefined, so that `return refuse(…)` ends an attempt. */
type Refuse = (status: number, message: string) => undefined;

interface Opened {
  readonly upstream: Socket;
  /** Ties the connection (and `parts`, cut with it) to the lease; the function returned frees its slot. */
  attach(parts: readonly Destroyable[]): () => void;
}

const HOP_HEADERS = ['proxy-authorization', 'proxy-connection', 'connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade'];
const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request', 403: 'Forbidden', 407: 'Proxy Authentication Required', 502: 'Bad Gateway', 503: 'Service Unavailable',
};

/** A request or response head, as counted against the budget (a close estimate; heads are at most 16 KiB). */
function headBytes(msg: IncomingMessage): number {
  return msg.rawHeaders.reduce((n, h) => n + Buffer.byteLength(h) + 2, 32 + Buffer.byteLength(msg.url ?? ''));
}

/** A pass-through stream that counts what flows against the lease and stops passing when it is spent. */
function meter(lease: Lease): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      callback(null, lease.account(chunk.length) ? chunk : undefined);
    },
  });
}

function rawReply(socket: Socket, status: number, message = '', extra = ''): void {
  socket.end(`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n${extra}Content-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(message)}\r\nConnection: close\r\n\r\n${message}`);
}

function reply(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': 'text/plain', connection: 'close' }).end(message);
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

/** A TCP connection to `address` (an IP literal: net.connect does no lookup for one). */
function connectTo(address: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: address, port });
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`connecting to ${address}:${port} timed out`)); }, timeoutMs);
    s.once('error', (e) => { clearTimeout(timer); reject(e); });
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      s.on('error', () => {}); // until its user listens: a reset must not throw
      resolve(s);
    });
  });
}

export class EgressProxy {
  private server: Server | undefined;
  private port = 0;
  private readonly leases = new Map<string, Lease>();
  private readonly sockets = new Set<Socket>();
  private readonly resolve: Resolve;
  private readonly resolveTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly platformServices: readonly { readonly host: string; readonly port: number }[];
  /** `address|port` of the platform's services, and the ports of those on loopback. */
  private readonly platformAddresses = new Set<string>();
  private readonly platformLoopbackPorts = new Set<number>();

  constructor(private readonly logger: Logger, opts: EgressProxyOptions = {}) {
    this.resolve = opts.resolve ?? systemResolve;
    this.resolveTimeoutMs = opts.resolveTimeoutMs ?? 10_000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 15_000;
    this.platformServices = opts.platformServices ?? [];
  }

  private async resolvePlatformServices(): Promise<void> {
    for (const { host, port } of this.platformServices) {
      let addresses: readonly string[];
      try {
        addresses = isIP(host) ? [host] : await withTimeout(this.resolve(host), this.resolveTimeoutMs, `resolving ${host}`);
      } catch (e) {
        this.logger.warn({ host, port, err: (e as Error).message }, 'could not resolve a platform service for the egress deny list; its name is still refused');
        addresses = [];
      }
      for (const a of addresses) {
        this.platformAddresses.add(`${canonicalAddress(a)}|${port}`);
        const cls = classifyAddress(a);
        if (cls === 'loopback' || cls === 'unspecified') this.platformLoopbackPorts.add(port);
      }
      if (host === 'localhost') this.platformLoopbackPorts.add(port);
    }
  }

  /** Whether address:port is one of the platform's own services. */
  private isPlatform(address: string, port: number): boolean {
    const cls = classifyAddress(address);
    if ((cls === 'loopback' || cls === 'unspecified') && this.platformLoopbackPorts.has(port)) return true;
    return this.platformAddresses.has(`${canonicalAddress(address)}|${port}`);
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => this.onRequest(req, res));
    server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => this.onConnect(req, socket, head));
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.onUpgrade(req, socket, head));
    server.on('connection', (s: Socket) => this.keep(s));
    server.on('clientError', (_e, socket) => socket.destroy());
    await this.resolvePlatformServices();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /**
   * Credentials under which a context may reach what `policy` allows and nothing else (the job's hosts: its
   * allowedHosts or its provider's; none at all reaches nothing).
   */
  lease(policy: EgressPolicy, onBlocked: OnBlocked, opts: LeaseOptions = {}): ProxyLease {
    return this.prepareLease().arm(policy, onBlocked, opts);
  }

  /**
   * Credentials for a context prepared before its job is known (browser.ts): until `arm` they reach nothing. Each
   * is armed for one job and released with it, like any lease.
   */
  prepareLease(): PreparedLease {
    if (!this.server) throw new Error('egress proxy not started');
    const username = `job-${randomUUID()}`;
    const password = randomBytes(18).toString('base64url');
    const lease = new Lease(Buffer.from(password));
    this.leases.set(username, lease);
    const proxy = { server: `http://127.0.0.1:${this.port}`, username, password };
    const release = () => {
      this.leases.delete(username);
      lease.released = true;
      lease.cut();
    };
    let armed = false;
    return {
      proxy, release,
      arm: (policy, onBlocked, opts = {}) => {
        if (armed) throw new Error('a prepared egress lease is armed once');
        armed = true;
        lease.arm(policy, onBlocked, opts);
        return this.handle(lease, proxy, release);
      },
    };
  }

  private handle(lease: Lease, proxy: ProxyLease['proxy'], release: () => void): ProxyLease {
    return {
      proxy,
      limitExceeded: () => lease.exceeded,
      bytes: () => lease.bytes,
      charge: (n) => lease.account(n),
      connectionsRefused: () => lease.refused,
      release,
    };
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }

  private keep(s: Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => {});
  }

  private leaseOf(req: IncomingMessage): Lease | undefined {
    const m = /^Basic\s+(\S+)$/i.exec(req.headers['proxy-authorization'] ?? '');
    if (!m) return undefined;
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i < 0) return undefined;
    const lease = this.leases.get(decoded.slice(0, i));
    const given = Buffer.from(decoded.slice(i + 1));
    return lease && given.length === lease.password.length && timingSafeEqual(given, lease.password) ? lease : undefined;
  }

  /**
   * Checks `host:port` for the lease and opens a connection to an address it checked, holding one of the lease's
   * connection slots; or calls `refuse` and gives undefined. `host` may be in any spelling the URL parser accepts.
   */
  private async open(lease: Lease, rawHost: string, port: string, refuse: Refuse): Promise<Opened | undefined> {
    if (lease.exceeded) return refuse(403, 'Blocked: the job\'s egress budget is spent.');
    const host = canonicalHost(rawHost);
    if (host === undefined) return refuse(400, 'Not a host name.');
    const matched = lease.policy.match(host, port);
    // A name that is not allowed is refused before any lookup: no DNS query carries it anywhere.
    if (!matched.length) {
      lease.onBlocked(host, 'not-allowed');
      return refuse(403, 'Blocked: this host is not in the job\'s allowedHosts.');
    }
    // The slot is held from here, so lookups and connects in flight count against maxConnections too.
    if (!lease.reserve()) return refuse(503, 'Too many connections at once for this job.');
    let upstream: Socket | undefined;
    try {
      upstream = await this.connectChecked(lease, host, port, matched, refuse);
    } finally {
      if (!upstream) lease.unreserve();
    }
    if (!upstream) return undefined;
    this.keep(upstream);
    const connected = upstream;
    return {
      upstream: connected,
      attach: (parts) => {
        const free = lease.attach([connected, ...parts]);
        connected.on('close', free);
        return free;
      },
    };
  }

  /** Resolves `host`, checks every address, and connects to the first of them that answers — to no other. */
  private async connectChecked(lease: Lease, host: string, port: string, matched: readonly HostPattern[], refuse: Refuse): Promise<Socket | undefined> {
    let addresses: readonly string[];
    if (isIP(host)) {
      addresses = [host];
    } else {
      try {
        addresses = await withTimeout(this.resolve(host), this.resolveTimeoutMs, `resolving ${host}`);
      } catch (e) {
        return refuse(502, `Could not resolve ${host}: ${(e as Error).message}`);
      }
      // Only IP literals are connected to below; anything else would be looked up again, unchecked.
      if (!addresses.length || addresses.some((a) => isIP(a) === 0)) return refuse(502, `Could not resolve ${host}.`);
    }
    for (const address of addresses) {
      const cls = classifyAddress(address);
      const why = (cls === 'loopback' || cls === 'unspecified') && Number(port) === this.port ? 'proxy'
        : this.isPlatform(address, Number(port)) ? 'platform'
          : lease.policy.refuseAddress(host, address, matched);
      if (why) {
        lease.onBlocked(host, why);
        return refuse(403, `Blocked: ${host} resolves to an address the job may not reach (${why}).`);
      }
    }
    let lastError: Error | undefined;
    // The addresses checked above, in order, and no others (pinned: a rebinding DNS gets no second say).
    for (const address of addresses) {
      try {
        const socket = await connectTo(address, Number(port), this.connectTimeoutMs);
        if (!lease.released && !lease.exceeded) return socket;
        socket.destroy();
        return refuse(403, 'Blocked: the job\'s egress lease has ended.');
      } catch (e) {
        lastError = e as Error;
      }
    }
    return refuse(502, `Upstream error: ${lastError?.message ?? 'no address'}`);
  }

  /** Plain-http requests arrive with an absolute URL. */
  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const lease = this.leaseOf(req);
    if (!lease) {
      res.writeHead(407, { 'proxy-authenticate': 'Basic realm="sri-egress"', connection: 'close' }).end();
      return;
    }
    let target: URL;
    try {
      target = new URL(req.url ?? '');
      if (target.protocol !== 'http:') throw new Error('not http');
    } catch {
      reply(res, 400, 'Bad request: the proxy forwards absolute http URLs only.');
      return;
    }
    void this.forward(lease, req, res, target).catch((e: unknown) => {
      this.logger.debug({ err: (e as Error).message }, 'egress request failed');
      res.destroy();
    });
  }

  private async forward(lease: Lease, req: IncomingMessage, res: ServerResponse, target: URL): Promise<void> {
    const opened = await this.open(lease, target.hostname, target.port || '80', (status, message) => { reply(res, status, message); return undefined; });
    if (!opened) return;
    const { upstream: socket } = opened;
    const free = opened.attach([res]);
    if (res.destroyed) {
      socket.destroy();
      return;
    }
    res.on('close', () => socket.destroy());
    const headers: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) if (!HOP_HEADERS.includes(name)) headers[name] = value;
    // The Host the server sees is the one checked, whatever the client sent.
    headers['host'] = target.host;
    if (!lease.account(headBytes(req))) return;
    const upstream = httpRequest({ method: req.method, path: `${target.pathname}${target.search}`, headers, createConnection: () => socket }, (up) => {
      if (!lease.account(headBytes(up))) return;
      const out = { ...up.headers };
      for (const h of HOP_HEADERS) delete out[h];
      res.writeHead(up.statusCode ?? 502, out);
      up.pipe(meter(lease)).pipe(res);
      up.on('error', () => res.destroy());
    });
    upstream.on('error', (e) => {
      free();
      reply(res, 502, `Upstream error: ${e.message}`);
    });
    req.pipe(meter(lease)).pipe(upstream);
  }

  /** https and WebSocket traffic (Chromium tunnels ws:// too): CONNECT host:port, then a byte tunnel. */
  private onConnect(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => {});
    const lease = this.leaseOf(req);
    if (!lease) {
      rawReply(socket, 407, '', 'Proxy-Authenticate: Basic realm="sri-egress"\r\n');
      return;
    }
    const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]@?#\\]+):(\d{1,5})$/.exec(req.url ?? '');
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
      rawReply(socket, 400, 'CONNECT wants host:port.');
      return;
    }
    void this.tunnel(lease, socket, m[1]!, String(Number(m[2])), 'HTTP/1.1 200 Connection Established\r\n\r\n', head);
  }

  /**
   * A WebSocket handshake sent to the proxy as a plain request with an absolute URL (Chromium uses CONNECT for
   * those; other clients may not): checked like any request, then the head is passed on and the rest tunnelled.
   */
  private onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => {});
    const lease = this.leaseOf(req);
    if (!lease) {
      rawReply(socket, 407, '', 'Proxy-Authenticate: Basic realm="sri-egress"\r\n');
      return;
    }
    let target: URL;
    try {
      target = new URL(req.url ?? '');
      if (target.protocol !== 'http:' && target.protocol !== 'ws:') throw new Error('not http');
    } catch {
      rawReply(socket, 400, 'Bad request: the proxy forwards absolute http URLs only.');
      return;
    }
    const lines = [`${req.method ?? 'GET'} ${target.pathname}${target.search} HTTP/1.1`, `Host: ${target.host}`];
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i]!;
      if (!/^(host|proxy-authorization|proxy-connection)$/i.test(name)) lines.push(`${name}: ${req.rawHeaders[i + 1]!}`);
    }
    const requestHead = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`);
    void this.tunnel(lease, socket, target.hostname, target.port || '80', '', Buffer.concat([requestHead, head]));
  }

  /** Opens the upstream connection, answers the client with `greeting`, sends `first` upstream, then splices both ways. */
  private async tunnel(lease: Lease, socket: Socket, host: string, port: string, greeting: string, first: Buffer): Promise<void> {
    try {
      const opened = await this.open(lease, host, port, (status, message) => { rawReply(socket, status, message); return undefined; });
      if (!opened) return;
      const { upstream } = opened;
      opened.attach([socket]);
      if (socket.destroyed) {
        upstream.destroy();
        return;
      }
      upstream.on('error', () => socket.destroy());
      socket.on('close', () => upstream.destroy());
      upstream.on('close', () => socket.destroy());
      if (greeting) socket.write(greeting);
      if (first.length && lease.account(first.length)) upstream.write(first);
      socket.pipe(meter(lease)).pipe(upstream);
      upstream.pipe(meter(lease)).pipe(socket);
    } catch (e) {
      this.logger.debug({ err: (e as Error).message }, 'egress tunnel failed');
      socket.destroy();
    }
  }
}

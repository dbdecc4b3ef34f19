/**
 * A filtering forward proxy on 127.0.0.1 that every browser context of a job with allowedHosts sends its traffic
 * through. Routing (host-guard.ts) alone is not enough: Playwright does not hand redirects of a navigation to route
 * handlers, so `goto(allowed)` answered by `302 Location: http://elsewhere/` would reach elsewhere. Through the
 * proxy, every connection — first request, redirect, WebSocket, subresource — names its host and is checked.
 *
 * Each job gets its own proxy credentials (Basic auth, answered by Playwright per context), which select that
 * job's allowedHosts; unknown or missing credentials get 407 and reach nothing.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Logger } from '../../shared/logger.ts';
import { hostMatches } from './host-guard.ts';

interface Lease {
  readonly password: string;
  readonly allowedHosts: readonly string[];
  readonly onBlocked: (host: string) => void;
}

export interface ProxyLease {
  /** For `browser.newContext({ proxy })`. */
  readonly proxy: { server: string; username: string; password: string };
  release(): void;
}

const HOP_HEADERS = ['proxy-authorization', 'proxy-connection', 'connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

export class EgressProxy {
  private server: Server | undefined;
  private port = 0;
  private readonly leases = new Map<string, Lease>();
  private readonly sockets = new Set<Socket>();

  constructor(private readonly logger: Logger) {}

  async start(): Promise<void> {
    const server = createServer((req, res) => this.onRequest(req, res));
    server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => this.onConnect(req, socket, head));
    server.on('upgrade', (_req: IncomingMessage, socket: Socket) => socket.end('HTTP/1.1 501 Not Implemented\r\n\r\n'));
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {});
    });
    server.on('clientError', (_e, socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Credentials under which a context may reach `allowedHosts` and nothing else. */
  lease(allowedHosts: readonly string[], onBlocked: (host: string) => void): ProxyLease {
    if (!this.server) throw new Error('egress proxy not started');
    const username = `job-${randomUUID()}`;
    const password = randomBytes(18).toString('base64url');
    this.leases.set(username, { password, allowedHosts, onBlocked });
    return {
      proxy: { server: `http://127.0.0.1:${this.port}`, username, password },
      release: () => { this.leases.delete(username); },
    };
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }

  private leaseOf(req: IncomingMessage): Lease | undefined {
    const m = /^Basic\s+(\S+)$/i.exec(req.headers['proxy-authorization'] ?? '');
    if (!m) return undefined;
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    const lease = this.leases.get(decoded.slice(0, i));
    return lease && lease.password === decoded.slice(i + 1) ? lease : undefined;
  }

  private allowed(lease: Lease, hostname: string, port: string): boolean {
    return lease.allowedHosts.some((p) => hostMatches(hostname, port, p));
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
      res.writeHead(400).end();
      return;
    }
    const port = target.port || '80';
    if (!this.allowed(lease, target.hostname, port)) {
      lease.onBlocked(target.hostname);
      res.writeHead(403, { 'content-type': 'text/plain' }).end('Blocked: this host is not in the job\'s allowedHosts.');
      return;
    }
    const headers = { ...req.headers };
    for (const h of HOP_HEADERS) delete headers[h];
    const upstream = httpRequest({ host: target.hostname.replace(/^\[|\]$/g, ''), port, method: req.method, path: `${target.pathname}${target.search}`, headers }, (up) => {
      const out = { ...up.headers };
      for (const h of HOP_HEADERS) delete out[h];
      res.writeHead(up.statusCode ?? 502, out);
      up.pipe(res);
      up.on('error', () => res.destroy());
    });
    upstream.on('error', (e) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end(`Upstream error: ${e.message}`);
      else res.destroy();
    });
    req.pipe(upstream);
  }

  /** https and WebSocket traffic: CONNECT host:port, then a byte tunnel. */
  private onConnect(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => {});
    const lease = this.leaseOf(req);
    if (!lease) {
      socket.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="sri-egress"\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(req.url ?? '');
    if (!m) {
      socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    const [, hostname, port] = m as unknown as [string, string, string];
    if (!this.allowed(lease, hostname, port)) {
      lease.onBlocked(hostname);
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const upstream = connect(Number(port), hostname, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    this.sockets.add(upstream);
    upstream.on('close', () => this.sockets.delete(upstream));
    upstream.on('error', (e) => {
      this.logger.debug({ err: e.message }, 'egress tunnel failed');
      socket.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
    });
    socket.on('close', () => upstream.destroy());
  }
}

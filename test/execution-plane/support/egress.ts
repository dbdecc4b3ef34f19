/**
 * Servers for the egress tests, on 127.0.0.1 (random ports): an HTTP target that records Host headers and can
 * stream large bodies, and a minimal WebSocket server (handshake plus one text frame) that counts its sockets.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface EgressTarget {
  readonly port: number;
  /** Host header of every request, in order. */
  readonly hosts: string[];
  /** Every /big response: bytes the server could write, and whether its connection closed. */
  readonly streams: { bytes: number; closed: boolean }[];
  close(): Promise<void>;
}

/**
 * `/big?mb=N` streams N MiB (with backpressure, so `bytes` is what the client side took); `/redirect?to=URL`
 * answers 302; `/html` a small page; anything else says `hello <path> host=<Host>`.
 */
export async function startEgressTarget(): Promise<EgressTarget> {
  const hosts: string[] = [];
  const streams: { bytes: number; closed: boolean }[] = [];
  const server = createServer((req, res) => {
    hosts.push(req.headers.host ?? '');
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/big') {
      const total = Number(url.searchParams.get('mb') ?? '1') * 1024 * 1024;
      const entry = { bytes: 0, closed: false };
      streams.push(entry);
      const chunk = Buffer.alloc(64 * 1024, 120);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total, 'access-control-allow-origin': '*' });
      const pump = (): void => {
        while (entry.bytes < total && !res.destroyed) {
          entry.bytes += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        if (!res.destroyed) res.end();
      };
      res.on('close', () => { entry.closed = true; });
      pump();
      return;
    }
    if (url.pathname === '/redirect') {
      res.writeHead(302, { location: url.searchParams.get('to') ?? '/' }).end();
      return;
    }
    if (url.pathname === '/html') {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><html><head><title>egress</title></head><body><p id="ok">ok</p></body></html>');
      return;
    }
    if (url.pathname === '/sw.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end('self.addEventListener("fetch", () => {});');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', 'access-control-allow-origin': '*' }).end(`hello ${req.url} host=${req.headers.host}`);
  });
  await listen(server);
  return { port: portOf(server), hosts, streams, close: () => closeServer(server) };
}

export interface WsServer {
  readonly port: number;
  /** Host header of every handshake. */
  readonly hosts: string[];
  /** Sockets open now, and the most open at once. */
  open(): number;
  maxOpen(): number;
  close(): Promise<void>;
}

/** Answers every WebSocket handshake with 101 and a text frame "hello"; keeps the socket open. */
export async function startWsServer(): Promise<WsServer> {
  const hosts: string[] = [];
  const sockets = new Set<Socket>();
  let maxOpen = 0;
  const server = createServer((_req, res) => res.writeHead(426).end());
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    hosts.push(req.headers.host ?? '');
    const key = req.headers['sec-websocket-key'] ?? '';
    const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.on('error', () => {});
    sockets.add(socket);
    maxOpen = Math.max(maxOpen, sockets.size);
    socket.on('close', () => sockets.delete(socket));
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    socket.write(Buffer.from([0x81, 5, ...Buffer.from('hello')]));
  });
  await listen(server);
  return {
    port: portOf(server), hosts, open: () => sockets.size, maxOpen: () => maxOpen,
    close: async () => {
      for (const s of sockets) s.destroy();
      await closeServer(server);
    },
  };
}

function listen(server: Server): Promise<void> {
  return new Promise((r) => server.listen(0, '127.0.0.1', r));
}

function portOf(server: Server): number {
  return (server.address() as AddressInfo).port;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((r) => { server.closeAllConnections(); server.close(() => r()); });
}

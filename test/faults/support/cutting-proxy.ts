/**
 * A TCP proxy in front of redis-server that can lose one reply: the next command whose request contains a marker
 * (e.g. `evalsha`) reaches Redis and runs, then the connection is cut before the reply gets back — what a client
 * sees when redis-server is killed right after fsyncing a write, or when the network drops at that moment.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface CuttingProxy {
  readonly url: string;
  /** The next request containing `marker` (lower-case match) runs on Redis; its reply is never delivered. */
  loseNextReplyTo(marker: string): void;
  close(): Promise<void>;
}

export async function startCuttingProxy(redisPort: number): Promise<CuttingProxy> {
  let marker: string | undefined;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection({ port: redisPort, host: '127.0.0.1' });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => { sockets.delete(s); client.destroy(); upstream.destroy(); });
    }
    let cutOnReply = false;
    client.on('data', (d: Buffer) => {
      if (marker && d.toString('latin1').toLowerCase().includes(marker)) {
        marker = undefined;
        cutOnReply = true;
      }
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (cutOnReply) {
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(d);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    loseNextReplyTo: (m) => { marker = m.toLowerCase(); },
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

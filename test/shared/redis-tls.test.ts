/**
 * TLS to Redis with client certificates, against a real TLS-only redis-server and certificates this test makes with
 * `openssl`: refusal without a certificate, a worker-style connection with one, expiry warnings/errors/refusal,
 * and a certificate rotation picked up without dropping an in-flight command.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, renameSync, writeFileSync, readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startEmbeddedRedis, type EmbeddedRedis } from '../../src/embedded/redis-server.ts';
import { freePort } from '../../src/embedded/ports.ts';
import { createRedis } from '../../src/shared/redis.ts';
import { isSriError } from '../../src/shared/errors.ts';
import { startRedisTls, type RedisTlsWatcher, type TlsLogger } from '../../src/shared/tls-watch.ts';
import { tempDir, TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';
import { boundToParent } from '../../src/embedded/bound-child.ts';

interface Entry { level: 'info' | 'warn' | 'error'; msg: string; obj: Record<string, unknown> }

function recordingLogger(): TlsLogger & { entries: Entry[] } {
  const entries: Entry[] = [];
  const rec = (level: Entry['level']) => (obj: object, msg: string) => { entries.push({ level, msg, obj: obj as Record<string, unknown> }); };
  return { entries, info: rec('info'), warn: rec('warn'), error: rec('error') };
}

/** A test PKI in `dir`: CAs, a server certificate for 127.0.0.1, client certificates with chosen lifetimes. */
class Pki {
  constructor(readonly dir: string) {}

  private ssl(args: string[]): void {
    execFileSync('openssl', args, { cwd: this.dir, stdio: ['ignore', 'ignore', 'pipe'] });
  }

  private key(name: string): string {
    this.ssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`]);
    return join(this.dir, `${name}.key`);
  }

  ca(name: string): { cert: string; key: string } {
    const key = this.key(name);
    this.ssl(['req', '-x509', '-new', '-key', key, '-out', `${name}.pem`, '-subj', `/CN=${name}`, '-days', '3650',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    return { cert: join(this.dir, `${name}.pem`), key };
  }

  /** A leaf signed by `ca`, valid `days` from now (-1: already expired). */
  leaf(name: string, ca: { cert: string; key: string }, days: number, ext: string): { cert: string; key: string } {
    const key = this.key(name);
    this.ssl(['req', '-new', '-key', key, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    writeFileSync(join(this.dir, `${name}.ext`), `${ext}\n`);
    this.ssl(['x509', '-req', '-in', `${name}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', String(days),
      '-extfile', `${name}.ext`, '-out', `${name}.pem`]);
    return { cert: join(this.dir, `${name}.pem`), key };
  }
}

const CLIENT_EXT = 'extendedKeyUsage=clientAuth';
const notAfterOf = (certFile: string) => new Date(new X509Certificate(readFileSync(certFile)).validTo);

describe('TLS to Redis with client certificates', () => {
  const tmp = tempDir('sri-redis-tls-');
  const pki = new Pki(tmp.path);
  let caA: { cert: string; key: string };
  let caB: { cert: string; key: string };
  let client1: { cert: string; key: string };
  let client2: { cert: string; key: string };
  let redis: EmbeddedRedis;
  let url: string;
  /** The files the "process" is configured with; the rotation test replaces their contents. */
  const live = { cert: join(tmp.path, 'live-client.pem'), key: join(tmp.path, 'live-client.key') };
  const opened: Redis[] = [];
  const watchers: RedisTlsWatcher[] = [];
  const track = <T extends Redis>(r: T): T => { opened.push(r); return r; };

  before(async () => {
    caA = pki.ca('ca-a');
    caB = pki.ca('ca-b');
    const server = pki.leaf('server', caA, 3650, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth');
    client1 = pki.leaf('client-1', caA, 400, CLIENT_EXT);
    client2 = pki.leaf('client-2', caB, 200, CLIENT_EXT);
    copyFileSync(client1.cert, live.cert);
    copyFileSync(client1.key, live.key);
    const port = await freePort();
    // TLS only: the plain port is 0 (closed); startEmbeddedRedis waits for a TCP accept on `port`, the TLS port.
    redis = await startEmbeddedRedis({
      dir: join(tmp.path, 'redis'), port,
      extraArgs: ['--port', '0', '--tls-port', String(port), '--tls-cert-file', server.cert, '--tls-key-file', server.key,
        '--tls-ca-cert-file', caA.cert, '--tls-auth-clients', 'yes', '--appendonly', 'no'],
    });
    url = `rediss://127.0.0.1:${port}`;
  });

  after(async () => {
    for (const w of watchers) w.stop();
    for (const r of opened) r.disconnect();
    await redis?.stop();
    tmp.remove();
  });

  const settings = (cert = live.cert, key = live.key) => ({ redisUrl: url, redisTlsCa: caA.cert, redisTlsCert: cert, redisTlsKey: key });

  /** A connection that gives up at once instead of retrying, to observe a refusal. */
  async function refused(tls: Record<string, Buffer>, target = url): Promise<void> {
    const c = new Redis(target, { tls, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false });
    c.on('error', () => {});
    try {
      await assert.rejects(c.connect().then(() => c.ping()));
    } finally {
      c.disconnect();
    }
  }

  it('refuses a client without a certificate, one with an untrusted certificate, and plain text', async () => {
    const ca = readFileSync(caA.cert);
    await refused({ ca });
    await refused({ ca, cert: readFileSync(client2.cert), key: readFileSync(client2.key) });
    const plain = new Redis(url.replace('rediss://', 'redis://'), { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 3000 });
    plain.on('error', () => {});
    await assert.rejects(plain.connect().then(() => plain.ping()));
    plain.disconnect();
  });

  // These start (and stop) watchers of their own; they run before the connection tests, whose watcher stays registered.
  it('warns for a certificate expiring in 10 days, logs an error at 3 days, refuses an expired one', () => {
    const in10 = pki.leaf('client-10d', caA, 10, CLIENT_EXT);
    const in3 = pki.leaf('client-3d', caA, 3, CLIENT_EXT);
    const expired = pki.leaf('client-expired', caA, -1, CLIENT_EXT);

    const l10 = recordingLogger();
    const w10 = startRedisTls(settings(in10.cert, in10.key), { logger: l10 })!;
    w10.stop();
    assert.deepEqual(l10.entries.filter((e) => e.level !== 'info').map((e) => e.level), ['warn']);
    assert.equal(l10.entries.find((e) => e.level === 'warn')!.obj['setting'], 'REDIS_TLS_CERT');
    assert.ok([9, 10].includes(w10.current()[0]!.daysLeft));

    const l3 = recordingLogger();
    startRedisTls(settings(in3.cert, in3.key), { logger: l3 })!.stop();
    const bad3 = l3.entries.filter((e) => e.level !== 'info');
    assert.deepEqual(bad3.map((e) => e.level), ['error']);
    assert.match(bad3[0]!.msg, /expires in [23] days; renew it now/);

    const lx = recordingLogger();
    assert.throws(() => startRedisTls(settings(expired.cert, expired.key), { logger: lx }),
      (e: unknown) => isSriError(e) && e.code === 'REDIS_TLS_CERT_EXPIRED' && e.message.includes('REDIS_TLS_CERT'));
    assert.ok(lx.entries.some((e) => e.level === 'error' && /has expired/.test(e.msg)));
  });

  it('checks expiry again on its interval (daily in production)', async () => {
    const in40 = pki.leaf('client-40d', caA, 40, CLIENT_EXT);
    let now = Date.now();
    const l = recordingLogger();
    const w = startRedisTls(settings(in40.cert, in40.key), { logger: l, now: () => now, checkIntervalMs: 20 })!;
    watchers.push(w);
    assert.equal(l.entries.filter((e) => e.level !== 'info').length, 0);
    now += 15 * 86_400_000;
    await waitFor(() => l.entries.some((e) => e.level === 'warn'), { what: 'the periodic check to warn' });
    now += 20 * 86_400_000;
    await waitFor(() => l.entries.some((e) => e.level === 'error'), { what: 'the periodic check to log an error' });
    w.stop();
  });

  it('refuses rediss:// material with a redis:// URL, and a certificate without its key', () => {
    const l = recordingLogger();
    assert.throws(() => startRedisTls({ ...settings(), redisUrl: 'redis://127.0.0.1:1' }, { logger: l }),
      (e: unknown) => isSriError(e) && e.code === 'CONFIG_INVALID' && /use rediss:\/\//.test(e.message));
    assert.throws(() => startRedisTls({ ...settings(), redisTlsKey: undefined }, { logger: l }),
      (e: unknown) => isSriError(e) && e.code === 'CONFIG_INVALID' && /together/.test(e.message));
    assert.throws(() => startRedisTls(settings(live.cert, client2.key), { logger: l }),
      (e: unknown) => isSriError(e) && e.code === 'CONFIG_INVALID' && /not a valid set/.test(e.message));
    assert.equal(startRedisTls({ redisUrl: 'redis://127.0.0.1:1' }, { logger: l }), undefined);
  });

  let watcher: RedisTlsWatcher;
  let log: ReturnType<typeof recordingLogger>;

  it('a worker-style connection (createRedis after startRedisTls) presents the client certificate: PING, LPUSH/RPOP', async () => {
    log = recordingLogger();
    watcher = startRedisTls(settings(), { logger: log, pollIntervalMs: 50 })!;
    watchers.push(watcher);
    assert.ok(watcher);
    assert.ok(log.entries.some((e) => e.level === 'info' && /loaded/.test(e.msg)));
    assert.deepEqual(log.entries.filter((e) => e.level !== 'info'), [], 'a 400-day certificate raises nothing');
    const r = track(createRedis(url, { name: 'sri-worker-tls-test' }));
    assert.equal(await r.ping(), 'PONG');
    await r.lpush('sri:test:tls:list', 'a', 'b');
    assert.equal(await r.rpop('sri:test:tls:list'), 'a');
    assert.equal(await r.rpop('sri:test:tls:list'), 'b');
  });

  it('picks up replaced certificate files: in-flight commands go on, reconnects and new connections use the new certificate', { timeout: 60_000 }, async () => {
    const admin = track(createRedis(url, { name: 'tls-admin' }));
    const blocked = track(createRedis(url, { name: 'tls-blocked' }));
    const oldId = await blocked.client('ID');
    const inFlight = blocked.brpop('sri:test:tls:rotate', 0);

    // The rotation: client-2 is signed by CA B, and from now on the server trusts CA B only, so a successful new
    // handshake proves the new certificate was presented. The key lands first: for a moment the pair does not match,
    // and the watcher must wait for the certificate rather than load a broken set.
    const stage = (from: string, to: string) => { copyFileSync(from, `${to}.new`); renameSync(`${to}.new`, to); };
    stage(client2.key, live.key);
    await admin.config('SET', 'tls-ca-cert-file', caB.cert);
    stage(client2.cert, live.cert);

    const expected = notAfterOf(client2.cert).toISOString();
    await waitFor(() => watcher.current().find((e) => e.setting === 'REDIS_TLS_CERT')?.notAfter.toISOString() === expected,
      { what: 'the watcher to load client-2' });
    assert.ok(log.entries.some((e) => e.level === 'info' && /reloaded/.test(e.msg) && e.obj['notAfter'] === expected));

    // The old certificate is refused now; a new connection made the usual way is accepted: it presents client-2.
    await refused({ ca: readFileSync(caA.cert), cert: readFileSync(client1.cert), key: readFileSync(client1.key) });
    const fresh = track(createRedis(url, { name: 'tls-fresh' }));
    assert.equal(await fresh.ping(), 'PONG');

    // The blocking read started before the rotation was not dropped: it receives what the new connection pushes.
    await fresh.lpush('sri:test:tls:rotate', 'job-1');
    assert.deepEqual(await inFlight, ['sri:test:tls:rotate', 'job-1']);

    // A dropped connection reconnects by itself, handshaking with the new certificate.
    await admin.client('KILL', 'ID', String(oldId));
    await waitFor(async () => (await blocked.ping()) === 'PONG' && (await blocked.client('ID')) !== oldId, { what: 'the reconnect' });
  });

  it('the worker and the API refuse to start with an expired certificate (REDIS_TLS_CERT_EXPIRED)', async () => {
    const expired = { cert: join(tmp.path, 'client-expired.pem'), key: join(tmp.path, 'client-expired.key') };
    const env = {
      PATH: process.env['PATH'] ?? '', HOME: tmp.path, NODE_NO_WARNINGS: '1', LOG_DIR: join(tmp.path, 'logs'),
      SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, JWT_SECRET: TEST_SIGNING_SECRET, REDIS_URL: url,
      REDIS_TLS_CA: caA.cert, REDIS_TLS_CERT: expired.cert, REDIS_TLS_KEY: expired.key, DATA_DIR: join(tmp.path, 'data'),
    };
    const run = (main: string) => new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(...boundToParent(process.execPath, ['--import', 'tsx', main]), { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
      child.once('exit', (code) => resolve({ code, out }));
    });
    const [worker, api] = await Promise.all([run('src/execution-plane/main.ts'), run('src/control-plane/main.ts')]);
    for (const [name, r] of [['worker', worker], ['api', api]] as const) {
      assert.equal(r.code, 1, `${name}: ${r.out}`);
      assert.match(r.out, new RegExp(`sri ${name}: The Redis TLS certificate in REDIS_TLS_CERT .* expired on`), r.out);
    }
  });
});

/**
 * TLS to Redis with client certificates (docs/security.md "Transport: TLS to Redis").
 *
 * `startRedisTls` reads REDIS_TLS_CA / REDIS_TLS_CERT / REDIS_TLS_KEY once at start, refuses to start when the client
 * certificate (or every CA certificate) has already expired, and registers the material with `useRedisTls` so every
 * `rediss://` connection `createRedis` makes in this process presents it. It then
 * - checks expiry again every `checkIntervalMs` (a day): warning under 30 days, error log under 7, error log when expired;
 * - polls the three files (`pollIntervalMs`) and, when one changed, re-reads them and swaps the material in the
 *   live options object ioredis holds. Connected sockets are left alone — in-flight commands and blocking reads go on —
 *   and the next connection or reconnect handshakes with the new certificate. A half-written rotation (a certificate
 *   that does not match its key, an unparsable file, an already expired certificate) is refused: the old material
 *   stays and the next poll tries again.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { SriError } from './errors.ts';
import { useRedisTls } from './redis.ts';

/** The settings this module reads (a subset of commonSettings). */
export interface RedisTlsSettings {
  readonly redisUrl: string;
  readonly redisTlsCa?: string | undefined;
  readonly redisTlsCert?: string | undefined;
  readonly redisTlsKey?: string | undefined;
}

/** The object handed to ioredis as `tls`; its fields are replaced in place when the files change. */
export interface LiveTlsOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

export type ExpiryLevel = 'ok' | 'warning' | 'error' | 'expired';

export interface CertificateExpiry {
  /** `REDIS_TLS_CERT` or `REDIS_TLS_CA`. */
  readonly setting: string;
  readonly file: string;
  readonly subject: string;
  readonly notAfter: Date;
  /** Whole days left (negative once expired). */
  readonly daysLeft: number;
  readonly level: ExpiryLevel;
}

/** The log calls this module makes (a pino Logger fits). */
export interface TlsLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface RedisTlsWatchOptions {
  logger: TlsLogger;
  /** Milliseconds between expiry checks. @default 86_400_000 (daily) */
  checkIntervalMs?: number;
  /** Milliseconds between checks of the files' size, mtime and inode. @default 10_000 */
  pollIntervalMs?: number;
  /** Warn when fewer days than this are left. @default 30 */
  warnDays?: number;
  /** Log an error when fewer days than this are left. @default 7 */
  errorDays?: number;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
  /** Called after new material was loaded, with the new expiries. */
  onReload?: (expiries: CertificateExpiry[]) => void;
}

const DAY_MS = 86_400_000;

interface Material {
  readonly tls: LiveTlsOptions;
  /** sha256 of the three files' contents: a touched but unchanged file is not a rotation. */
  readonly digest: string;
}

interface FileRef { readonly setting: string; readonly path: string }

export class RedisTlsWatcher {
  /** Live options: pass this very object to ioredis (`useRedisTls` does) so reconnects see rotations. */
  readonly tls: LiveTlsOptions;
  private digest: string;
  private stamps: string;
  private expiries: CertificateExpiry[];
  private readonly timers: NodeJS.Timeout[] = [];
  private polling = false;
  private readonly now: () => number;

  constructor(private readonly files: FileRef[], private readonly opts: RedisTlsWatchOptions) {
    this.now = opts.now ?? Date.now;
    const material = loadMaterial(files);
    this.tls = { ...material.tls };
    this.digest = material.digest;
    this.stamps = statStamps(files);
    this.expiries = this.computeExpiries();
  }

  /** The expiries of the loaded material, as of now. */
  current(): CertificateExpiry[] {
    return this.expiries;
  }

  /** Re-evaluates expiry against the clock and logs each certificate under the warning threshold. */
  checkExpiry(): CertificateExpiry[] {
    this.expiries = this.computeExpiries();
    for (const e of this.expiries) logExpiry(this.opts.logger, e);
    return this.expiries;
  }

  /**
   * Re-reads the files when their size, mtime or inode changed; swaps the material in when it is complete and valid.
   * Returns whether new material was loaded.
   */
  reloadIfChanged(): boolean {
    let stamps: string;
    try {
      stamps = statStamps(this.files);
    } catch (e) {
      // Mid-rotation a file may be missing for a moment; keep the old material and look again next time.
      this.opts.logger.warn({ err: (e as Error).message }, 'Redis TLS files not readable; keeping the current certificate');
      return false;
    }
    if (stamps === this.stamps) return false;
    let material: Material;
    try {
      material = loadMaterial(this.files);
    } catch (e) {
      this.opts.logger.warn({ err: (e as Error).message }, 'Redis TLS files changed but are not a usable set yet; keeping the current certificate');
      return false;
    }
    this.stamps = stamps;
    if (material.digest === this.digest) return false;
    const expiries = computeExpiries(this.files, material.tls, this.now(), this.opts);
    const dead = fatalExpiry(expiries);
    if (dead) {
      this.opts.logger.error({ setting: dead.setting, file: dead.file, notAfter: dead.notAfter.toISOString() },
        'new Redis TLS certificate has already expired; keeping the current one');
      return false;
    }
    // Replaced in place: ioredis copies these fields into tls.connect() at every (re)connect.
    delete this.tls.ca; delete this.tls.cert; delete this.tls.key;
    Object.assign(this.tls, material.tls);
    this.digest = material.digest;
    this.expiries = expiries;
    const client = expiries.find((e) => e.setting === 'REDIS_TLS_CERT');
    this.opts.logger.info({ files: this.files.map((f) => f.path), notAfter: client?.notAfter.toISOString(), daysLeft: client?.daysLeft },
      'Redis TLS certificate reloaded; new connections use it, open connections carry on');
    for (const e of expiries) logExpiry(this.opts.logger, e);
    this.opts.onReload?.(expiries);
    return true;
  }

  /** Starts the daily expiry check and the file poll (timers do not keep the process alive). */
  start(): this {
    const check = setInterval(() => this.checkExpiry(), this.opts.checkIntervalMs ?? DAY_MS);
    const poll = setInterval(() => {
      if (this.polling) return;
      this.polling = true;
      try {
        this.reloadIfChanged();
      } finally {
        this.polling = false;
      }
    }, this.opts.pollIntervalMs ?? 10_000);
    for (const t of [check, poll]) { t.unref(); this.timers.push(t); }
    return this;
  }

  /** Stops the timers and unregisters the material from createRedis (open connections keep theirs). */
  stop(): void {
    for (const t of this.timers.splice(0)) clearInterval(t);
    useRedisTls(undefined, this.tls);
  }

  private computeExpiries(): CertificateExpiry[] {
    return computeExpiries(this.files, this.tls, this.now(), this.opts);
  }
}

/**
 * Sets up TLS to Redis for this process from the settings. Returns undefined when the URL is `redis://` and no TLS
 * file is set (nothing to do); a `rediss://` URL without files uses the system's CAs and no client certificate.
 * Throws SriError CONFIG_INVALID (bad combination, unreadable file, certificate/key mismatch) or REDIS_TLS_CERT_EXPIRED.
 */
export function startRedisTls(settings: RedisTlsSettings, opts: RedisTlsWatchOptions): RedisTlsWatcher | undefined {
  const files: FileRef[] = [];
  if (settings.redisTlsCa) files.push({ setting: 'REDIS_TLS_CA', path: settings.redisTlsCa });
  if (settings.redisTlsCert) files.push({ setting: 'REDIS_TLS_CERT', path: settings.redisTlsCert });
  if (settings.redisTlsKey) files.push({ setting: 'REDIS_TLS_KEY', path: settings.redisTlsKey });
  const tlsUrl = settings.redisUrl.startsWith('rediss://');
  if (files.length === 0) return undefined;
  const problems: string[] = [];
  if (!tlsUrl) problems.push(`${files.map((f) => f.setting).join(', ')} set but REDIS_URL is redis://; use rediss:// so the connection uses TLS`);
  if (!!settings.redisTlsCert !== !!settings.redisTlsKey) problems.push('REDIS_TLS_CERT and REDIS_TLS_KEY must be set together');
  if (problems.length) throw new SriError('CONFIG_INVALID', `Invalid configuration: ${problems.join('; ')}. See docs/configuration.md.`);

  let watcher: RedisTlsWatcher;
  try {
    watcher = new RedisTlsWatcher(files, opts);
  } catch (e) {
    throw new SriError('CONFIG_INVALID', `Invalid configuration: ${(e as Error).message}. See docs/security.md "Transport: TLS to Redis".`, { cause: e });
  }
  const expiries = watcher.checkExpiry();
  const dead = fatalExpiry(expiries);
  if (dead) {
    throw new SriError('REDIS_TLS_CERT_EXPIRED',
      `The Redis TLS certificate in ${dead.setting} (${dead.file}, ${dead.subject}) expired on ${dead.notAfter.toISOString()}; install a renewed certificate and start again.`);
  }
  const client = expiries.find((e) => e.setting === 'REDIS_TLS_CERT');
  opts.logger.info({ files: files.map((f) => f.path), notAfter: client?.notAfter.toISOString(), daysLeft: client?.daysLeft }, 'Redis TLS client certificate loaded');
  useRedisTls(watcher.tls);
  return watcher.start();
}

/** The expiry that forbids using the material: the client certificate expired, or every CA certificate did. */
function fatalExpiry(expiries: CertificateExpiry[]): CertificateExpiry | undefined {
  const client = expiries.find((e) => e.setting === 'REDIS_TLS_CERT' && e.level === 'expired');
  if (client) return client;
  const cas = expiries.filter((e) => e.setting === 'REDIS_TLS_CA');
  return cas.length > 0 && cas.every((e) => e.level === 'expired') ? cas[0] : undefined;
}

function logExpiry(logger: TlsLogger, e: CertificateExpiry): void {
  const fields = { setting: e.setting, file: e.file, subject: e.subject, notAfter: e.notAfter.toISOString(), daysLeft: e.daysLeft };
  if (e.level === 'expired') logger.error(fields, 'Redis TLS certificate has expired; new connections to Redis will be refused');
  else if (e.level === 'error') logger.error(fields, `Redis TLS certificate expires in ${e.daysLeft} days; renew it now`);
  else if (e.level === 'warning') logger.warn(fields, `Redis TLS certificate expires in ${e.daysLeft} days; renew it`);
}

function computeExpiries(files: FileRef[], tls: LiveTlsOptions, nowMs: number, opts: RedisTlsWatchOptions): CertificateExpiry[] {
  const out: CertificateExpiry[] = [];
  const add = (ref: FileRef, cert: X509Certificate) => {
    const notAfter = new Date(cert.validTo);
    const leftMs = notAfter.getTime() - nowMs;
    const level: ExpiryLevel = leftMs <= 0 ? 'expired'
      : leftMs < (opts.errorDays ?? 7) * DAY_MS ? 'error'
        : leftMs < (opts.warnDays ?? 30) * DAY_MS ? 'warning' : 'ok';
    out.push({ setting: ref.setting, file: ref.path, subject: cert.subject.replace(/\n/g, ', '), notAfter, daysLeft: Math.floor(leftMs / DAY_MS), level });
  };
  const certRef = files.find((f) => f.setting === 'REDIS_TLS_CERT');
  // The leaf is the first certificate of the file; the rest is its chain.
  if (certRef && tls.cert) add(certRef, new X509Certificate(tls.cert));
  const caRef = files.find((f) => f.setting === 'REDIS_TLS_CA');
  if (caRef && tls.ca) for (const c of pemBlocks(tls.ca)) add(caRef, new X509Certificate(c));
  return out;
}

function pemBlocks(pem: Buffer): string[] {
  return pem.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Reads the files and proves they form a usable set (parsable, certificate matches key) before anyone uses them. */
function loadMaterial(files: FileRef[]): Material {
  const tls: LiveTlsOptions = {};
  const hash = createHash('sha256');
  for (const f of files) {
    let data: Buffer;
    try {
      data = readFileSync(f.path);
    } catch (e) {
      throw new Error(`${f.setting} ${f.path} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    hash.update(f.setting).update(data);
    if (f.setting === 'REDIS_TLS_CA') {
      if (pemBlocks(data).length === 0) throw new Error(`${f.setting} ${f.path} holds no PEM certificate`);
      tls.ca = data;
    } else if (f.setting === 'REDIS_TLS_CERT') {
      tls.cert = data;
    } else {
      tls.key = data;
    }
  }
  try {
    if (tls.cert) new X509Certificate(tls.cert);
    // Throws on an unparsable PEM and on a key that does not belong to the certificate.
    createSecureContext(tls);
  } catch (e) {
    throw new Error(`the Redis TLS files are not a valid set (${(e as Error).message})`);
  }
  return { tls, digest: hash.digest('hex') };
}

function statStamps(files: FileRef[]): string {
  // stat follows symlinks, so a Kubernetes secret volume's atomic `..data` swap shows up as a new inode.
  return files.map((f) => { const s = statSync(f.path); return `${s.ino}:${s.size}:${s.mtimeMs}`; }).join('|');
}

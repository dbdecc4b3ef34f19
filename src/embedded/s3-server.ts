/**
 * The embedded S3-compatible server of `sri up` and of the tests: `@20minutes/s3rver` (the maintained fork of
 * s3rver, same API), objects under `directory`, the given buckets created at start. It is a **development
 * dependency**: production runs against an external S3 (S3_ENDPOINT) and its images (`npm ci --omit=dev`) have no
 * copy of it, so it is imported only when a stack starts it, and its absence is a start-up error that says what to
 * do (EMBEDDED_S3_MISSING), not a stack trace.
 *
 * What it checks, and what it does not (docs/deploy.md "The embedded S3 server"):
 *   - a request must name the configured access key id (S3_ACCESS_KEY): another one gets 403 InvalidAccessKeyId, a
 *     request with no credentials 403 AccessDenied (CORS preflights aside);
 *   - a presigned URL is refused once expired (X-Amz-Date + X-Amz-Expires);
 *   - **not** the SigV4 signature: any signature under the right access key id passes, whatever secret made it;
 *   - **not** IAM or bucket policies (deploy/s3/worker-policy.json), ACLs, object lock or encryption.
 *
 * Why the signature is not checked: the package's public API knows one key pair, its documented `S3RVER`/`S3RVER`,
 * and offers `allowMismatchedSignatures`; registering another pair means reaching into its private
 * `lib/models/account.js`, which we no longer do. So requests under the configured access key id are handed to it
 * under `S3RVER`, with mismatched signatures allowed.
 */
import { mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SriError } from '../shared/errors.ts';

export interface EmbeddedS3 {
  readonly endpoint: string;
  readonly port: number;
  close(): Promise<void>;
}

/** The npm package of the embedded S3 server (a devDependency). */
export const EMBEDDED_S3_PACKAGE = '@20minutes/s3rver';

/** The one key pair the package's public API has (its README): requests reach it under this access key id. */
const PACKAGE_ACCESS_KEY = 'S3RVER';

/** What this file uses of the package: its options and two public methods (the package ships no types). */
interface S3rverOptions {
  silent: boolean;
  directory: string;
  allowMismatchedSignatures: boolean;
  configureBuckets: Array<{ name: string }>;
}
interface S3rverApp {
  /** Creates the configured buckets (a no-op for those that exist). */
  configureBuckets(): Promise<unknown>;
  /** The Koa request handler, as the package documents for mounting it in another server. */
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
}
export type S3rverClass = new (options: S3rverOptions) => S3rverApp;

function isPackageMissing(err: unknown, specifier: string): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  return e?.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes(`'${specifier}'`);
}

/**
 * Imports the embedded S3 server's package. Throws EMBEDDED_S3_MISSING when it is not installed — a production
 * install, which has no dev dependencies. `specifier` exists for the test of that message.
 */
export async function loadEmbeddedS3Server(specifier: string = EMBEDDED_S3_PACKAGE): Promise<S3rverClass> {
  try {
    // A specifier in a variable: the package has no types, and the import must stay dynamic (see the file comment).
    const mod = (await import(specifier)) as { default: S3rverClass };
    return mod.default;
  } catch (err) {
    if (!isPackageMissing(err, specifier)) throw err;
    throw new SriError('EMBEDDED_S3_MISSING',
      `the embedded S3 server (${specifier}, a development dependency) is not installed — this looks like a production `
      + 'install (npm ci --omit=dev). Set S3_ENDPOINT (with S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION) to an S3 service, '
      + 'or install the development dependencies (npm ci) to use the embedded one.');
  }
}

/** The access key id a request names, and how to hand the request on under another one. */
interface Credential {
  readonly accessKey: string;
  rewrite(req: IncomingMessage, to: string): void;
}

const AUTH_V4 = /^(AWS4-HMAC-SHA256\s+Credential=)([^/,\s]*)\//i;
const AUTH_V2 = /^(AWS\s+)([^:\s]*):/;
const QUERY_V4 = /([?&]X-Amz-Credential=)([^&]*)/;
const QUERY_V2 = /([?&]AWSAccessKeyId=)([^&]*)/;

function decoded(value: string): string | undefined {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/** The credential of a request (header or presigned query, SigV4 or V2); undefined when it carries none. */
function credentialOf(req: IncomingMessage): Credential | undefined {
  const auth = req.headers.authorization;
  if (auth !== undefined) {
    for (const re of [AUTH_V4, AUTH_V2]) {
      const m = re.exec(auth);
      if (m) {
        return {
          accessKey: m[2]!,
          rewrite: (r, to) => { r.headers.authorization = auth.replace(re, (all, head: string) => `${head}${to}${all.slice(head.length + m[2]!.length)}`); },
        };
      }
    }
    return { accessKey: '', rewrite: () => {} }; // no access key id to read: refused as unknown
  }
  const url = req.url ?? '/';
  const v4 = QUERY_V4.exec(url);
  if (v4) {
    const value = decoded(v4[2]!) ?? '';
    const slash = value.indexOf('/');
    return {
      accessKey: slash >= 0 ? value.slice(0, slash) : value,
      rewrite: (r, to) => { r.url = url.replace(QUERY_V4, (_all, head: string) => `${head}${encodeURIComponent(to + (slash >= 0 ? value.slice(slash) : ''))}`); },
    };
  }
  const v2 = QUERY_V2.exec(url);
  if (v2) {
    return {
      accessKey: decoded(v2[2]!) ?? '',
      rewrite: (r, to) => { r.url = url.replace(QUERY_V2, (_all, head: string) => `${head}${encodeURIComponent(to)}`); },
    };
  }
  return undefined;
}

function refuse(req: IncomingMessage, res: ServerResponse, code: 'InvalidAccessKeyId' | 'AccessDenied', message: string): void {
  req.resume(); // the body, if any, is not wanted
  res.writeHead(403, { 'content-type': 'application/xml', connection: 'close' })
    .end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`);
}

export async function startEmbeddedS3(opts: {
  directory: string; port: number; host?: string; buckets: string[];
  /** The access key id clients sign with (S3_ACCESS_KEY). @default 'minioadmin' */
  accessKey?: string;
  /** Kept for callers that pass S3_SECRET_KEY; the embedded server does not check signatures (see above). */
  secretKey?: string;
  /** The server's class. @default the package, imported now (loadEmbeddedS3Server) */
  S3rver?: S3rverClass;
}): Promise<EmbeddedS3> {
  const S3rver = opts.S3rver ?? await loadEmbeddedS3Server();
  const accessKey = opts.accessKey ?? 'minioadmin';
  const host = opts.host ?? '127.0.0.1';
  mkdirSync(opts.directory, { recursive: true });
  const app = new S3rver({
    silent: true,
    directory: opts.directory,
    allowMismatchedSignatures: true,
    configureBuckets: opts.buckets.map((name) => ({ name })),
  });
  await app.configureBuckets();
  const handle = app.callback();
  const server: Server = createServer((req, res) => {
    const credential = credentialOf(req);
    if (credential === undefined) {
      // CORS preflights carry no credentials on any S3; everything else must.
      if (req.method === 'OPTIONS') return handle(req, res);
      return refuse(req, res, 'AccessDenied', 'Anonymous access is not allowed: sign the request with S3_ACCESS_KEY.');
    }
    if (credential.accessKey !== accessKey) {
      return refuse(req, res, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');
    }
    credential.rewrite(req, PACKAGE_ACCESS_KEY);
    handle(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => { server.off('error', reject); resolve(); });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://${host}:${port}`,
    port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    }),
  };
}

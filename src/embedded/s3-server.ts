/**
 * The embedded S3-compatible server (s3rver) used by `sri up` and by tests. It stores objects under `directory`
 * and creates the given buckets. Credentials are not checked by s3rver; clients still sign with minioadmin.
 */
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
// s3rver ships no types.
// @ts-expect-error untyped module
import S3rver from 's3rver';

export interface EmbeddedS3 {
  readonly endpoint: string;
  readonly port: number;
  close(): Promise<void>;
}

const require = createRequire(import.meta.url);

/** s3rver verifies request signatures against its account registry; register the configured key pair. */
function registerKeyPair(accessKey: string, secretKey: string): void {
  const account = require('s3rver/lib/models/account.js') as { DUMMY_ACCOUNT: { createKeyPair(a: string, s: string): void } };
  account.DUMMY_ACCOUNT.createKeyPair(accessKey, secretKey);
}

export async function startEmbeddedS3(opts: {
  directory: string; port: number; host?: string; buckets: string[]; accessKey?: string; secretKey?: string;
}): Promise<EmbeddedS3> {
  mkdirSync(opts.directory, { recursive: true });
  registerKeyPair(opts.accessKey ?? 'minioadmin', opts.secretKey ?? 'minioadmin');
  const server = new S3rver({
    address: opts.host ?? '127.0.0.1',
    port: opts.port,
    silent: true,
    directory: opts.directory,
    configureBuckets: opts.buckets.map((name) => ({ name })),
  });
  const addr = (await server.run()) as AddressInfo;
  return {
    endpoint: `http://${opts.host ?? '127.0.0.1'}:${addr.port}`,
    port: addr.port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * The embedded S3 server (src/embedded/s3-server.ts, `@20minutes/s3rver`): what it checks and what it does not, as
 * docs/deploy.md "The embedded S3 server" says — the access key id and presigned expiry, not SigV4 signatures — and
 * that it stays a development dependency that production code never imports up front. The byte-for-byte streamed
 * upload is test/support/smoke.test.ts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EMBEDDED_S3_PACKAGE, loadEmbeddedS3Server, startEmbeddedS3, type EmbeddedS3 } from '../../src/embedded/s3-server.ts';
import { freePort } from '../../src/embedded/ports.ts';
import { isSriError } from '../../src/shared/errors.ts';
import { BlobStore, createS3Client } from '../../src/shared/s3.ts';
import { tempDir, waitFor } from '../support/services.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

describe('the embedded S3 server', () => {
  const dir = tempDir('sri-s3-server-');
  let s3: EmbeddedS3;
  const store = (accessKey: string, secretKey: string) =>
    new BlobStore(createS3Client({ s3Endpoint: s3.endpoint, s3Region: 'us-east-1', s3AccessKey: accessKey, s3SecretKey: secretKey }));

  before(async () => {
    // A key pair other than the default: the configured S3_ACCESS_KEY is what the server accepts.
    s3 = await startEmbeddedS3({ directory: dir.path, port: await freePort(), buckets: ['sri-results'], accessKey: 'sri', secretKey: 'sri-secret-key' });
  });
  after(async () => {
    await s3?.close();
    dir.remove();
  });

  it('serves clients signing with the configured access key, buckets created at start', async () => {
    const s = store('sri', 'sri-secret-key');
    try {
      await s.put('sri-results', 'a/b.txt', 'hello');
      assert.equal((await s.get('sri-results', 'a/b.txt'))?.toString(), 'hello');
      assert.deepEqual(await s.list('sri-results', 'a/'), [{ key: 'a/b.txt', size: 5 }]);
    } finally {
      s.client.destroy();
    }
  });

  it('refuses another access key id (InvalidAccessKeyId) and requests with no credentials (AccessDenied)', async () => {
    const other = store('minioadmin', 'sri-secret-key');
    try {
      await assert.rejects(other.get('sri-results', 'a/b.txt'), (e: Error) => e.name === 'InvalidAccessKeyId');
    } finally {
      other.client.destroy();
    }
    const anonymous = await fetch(`${s3.endpoint}/sri-results/a/b.txt`);
    assert.equal(anonymous.status, 403);
    assert.match(await anonymous.text(), /<Code>AccessDenied<\/Code>/);
  });

  it('does not check SigV4 signatures: the right access key id with a wrong secret passes (documented)', async () => {
    const wrongSecret = store('sri', 'not-the-secret');
    try {
      assert.equal((await wrongSecret.get('sri-results', 'a/b.txt'))?.toString(), 'hello');
    } finally {
      wrongSecret.client.destroy();
    }
  });

  it('serves presigned links until they expire', async () => {
    const s = store('sri', 'sri-secret-key');
    try {
      const link = await s.presignGet('sri-results', 'a/b.txt', 1);
      const first = await fetch(link);
      assert.equal(first.status, 200);
      assert.equal(await first.text(), 'hello');
      await waitFor(async () => (await fetch(link)).status === 403, { timeoutMs: 10_000, what: 'the 1 s link to expire' });
      const otherKey = new URL(await s.presignGet('sri-results', 'a/b.txt', 60));
      otherKey.searchParams.set('X-Amz-Credential', otherKey.searchParams.get('X-Amz-Credential')!.replace(/^sri\//, 'minioadmin/'));
      assert.equal((await fetch(otherKey)).status, 403, 'a link under another access key id');
    } finally {
      s.client.destroy();
    }
  });

  it('fails with EMBEDDED_S3_MISSING, saying what to do, when the package is not installed (a production install)', async () => {
    await assert.rejects(loadEmbeddedS3Server('@20minutes/not-installed-here'), (e: unknown) => {
      assert.ok(isSriError(e), String(e));
      assert.equal(e.code, 'EMBEDDED_S3_MISSING');
      assert.match(e.message, /set S3_ENDPOINT/i);
      assert.match(e.message, /npm ci/);
      return true;
    });
    assert.equal(typeof await loadEmbeddedS3Server(), 'function', 'installed here (a dev dependency)');
  });

  it('is a development dependency that no module imports statically; the old s3rver is gone', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    assert.ok(pkg.devDependencies[EMBEDDED_S3_PACKAGE], `${EMBEDDED_S3_PACKAGE} in devDependencies`);
    assert.equal(pkg.dependencies[EMBEDDED_S3_PACKAGE], undefined, 'not a production dependency');
    assert.equal(pkg.dependencies['s3rver'], undefined, 'the unmaintained s3rver is not a dependency');
    assert.equal(pkg.devDependencies['s3rver'], undefined);
    for (const f of filesUnder(join(ROOT, 'src')).filter((p) => p.endsWith('.ts'))) {
      const text = readFileSync(f, 'utf8');
      assert.doesNotMatch(text, /\bfrom\s+['"](@20minutes\/)?s3rver(\/[^'"]*)?['"]|require\(\s*['"](@20minutes\/)?s3rver/, `${f} imports s3rver statically`);
    }
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { BlobStore, createS3Client } from '../../src/shared/s3.ts';
import { createRedis } from '../../src/shared/redis.ts';
import { startTestRedis, startTestS3 } from './services.ts';

describe('test services', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  let s3: Awaited<ReturnType<typeof startTestS3>>;
  before(async () => { [redis, s3] = await Promise.all([startTestRedis(), startTestS3()]); });
  after(async () => { await Promise.all([redis?.stop(), s3?.close()]); });

  it('stores a streamed upload byte for byte (no aws-chunked framing inside the object)', async () => {
    const store = new BlobStore(createS3Client({ s3Endpoint: s3.endpoint, s3Region: 'us-east-1', s3AccessKey: 'minioadmin', s3SecretKey: 'minioadmin' }));
    const bytes = randomBytes(300_000);
    await store.put('sri-results', 'stream/test.bin', Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]));
    const back = await store.get('sri-results', 'stream/test.bin');
    assert.ok(back);
    assert.equal(Buffer.compare(back, bytes), 0);
    assert.equal(await store.get('sri-results', 'stream/missing.bin'), undefined);
    store.client.destroy();
  });

  it('talks to the redis-server it started', async () => {
    const c = createRedis(redis.url);
    assert.equal(await c.ping(), 'PONG');
    c.disconnect();
  });
});

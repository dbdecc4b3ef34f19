/**
 * Streams one evidence file to the store, hashing it on the way: what the artifacts list says of a file (bytes,
 * sha256) is what went to S3, never a second read of it. Used for downloads (helpers.ts) and recordings
 * (recording.ts); each bounds the upload with its own `signal`.
 */
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface StoredFile {
  readonly uri: string;
  readonly bytes: number;
  readonly sha256: string;
}

/** `put` receives the hashed stream; on a failure both streams are destroyed and the error is thrown. */
export async function storeHashed(source: Readable, put: (body: Readable, signal: AbortSignal) => Promise<string>, signal: AbortSignal): Promise<StoredFile> {
  const hash = createHash('sha256');
  let bytes = 0;
  const measure = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      bytes += chunk.length;
      callback(null, chunk);
    },
  });
  const piping = pipeline(source, measure, { signal });
  piping.catch(() => {}); // its failure reaches the upload, which reads `measure`
  let uri: string;
  try {
    uri = await put(measure, signal);
  } catch (e) {
    source.destroy();
    measure.destroy();
    throw e;
  }
  await piping;
  return { uri, bytes, sha256: hash.digest('hex') };
}

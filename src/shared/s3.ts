/**
 * S3 access for both planes. Every S3-compatible endpoint gets `requestChecksumCalculation: 'WHEN_REQUIRED'`:
 * with the SDK's default, s3rver (and other servers) store streamed uploads with their aws-chunked framing inside
 * the object — silently corrupted. A test uploads a stream and compares bytes.
 */
import { Readable } from 'node:stream';
import {
  CreateBucketCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command,
  PutObjectCommand, S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';

export interface S3Settings {
  readonly s3Endpoint: string;
  readonly s3Region: string;
  readonly s3AccessKey: string;
  readonly s3SecretKey: string;
}

export function createS3Client(cfg: S3Settings): S3Client {
  return new S3Client({
    endpoint: cfg.s3Endpoint,
    region: cfg.s3Region,
    credentials: { accessKeyId: cfg.s3AccessKey, secretAccessKey: cfg.s3SecretKey },
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
  });
}

/** Part size of streamed uploads: S3's smallest (every part but the last must be 5 MiB or more). */
export const STREAM_PART_BYTES = 5 * 1024 * 1024;
/** Parts of one streamed upload in flight at once: a download of any size holds about 10 MiB of the worker's memory. */
export const STREAM_QUEUE_SIZE = 2;

/**
 * `attachment` with the file name twice (RFC 6266): `filename` in plain ASCII (anything else, quotes and
 * backslashes become `_`) for old clients, `filename*` percent-encoded UTF-8 for the rest.
 */
export function attachmentDisposition(fileName: string): string {
  const ascii = fileName.replace(/[^\x20-\x7e]|["\\]/g, '_') || 'download';
  const encoded = encodeURIComponent(fileName).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

/** `s3://bucket/key`, the form result messages carry. */
export const s3Uri = (bucket: string, key: string) => `s3://${bucket}/${key}`;

export function parseS3Uri(uri: string): { bucket: string; key: string } | undefined {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  return m ? { bucket: m[1]!, key: m[2]! } : undefined;
}

export function isNotFound(e: unknown): boolean {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err?.name === 'NotFound' || err?.name === 'NoSuchKey' || err?.$metadata?.httpStatusCode === 404;
}

/** A small blob-store facade over one S3 client: what the planes need, nothing more. */
export class BlobStore {
  constructor(readonly client: S3Client) {}

  /**
   * Stores `body` under `key`. A stream is uploaded as it is read (multipart above one part): at most
   * STREAM_PART_BYTES × STREAM_QUEUE_SIZE of it is held in memory, whatever its length. `signal` aborts the upload
   * (a multipart upload left unfinished is aborted with it).
   */
  async put(bucket: string, key: string, body: Buffer | string | Readable, contentType?: string, opts: { signal?: AbortSignal } = {}): Promise<string> {
    if (body instanceof Readable) {
      const upload = new Upload({
        client: this.client, queueSize: STREAM_QUEUE_SIZE, partSize: STREAM_PART_BYTES,
        params: { Bucket: bucket, Key: key, Body: body, ContentType: contentType },
      });
      const abort = () => { void upload.abort().catch(() => {}); };
      opts.signal?.throwIfAborted();
      opts.signal?.addEventListener('abort', abort, { once: true });
      try {
        await upload.done();
      } finally {
        opts.signal?.removeEventListener('abort', abort);
      }
    } else {
      await this.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }), { abortSignal: opts.signal });
    }
    return s3Uri(bucket, key);
  }

  /** The object's bytes, or undefined when it does not exist. `signal` aborts the request and the read of its body. */
  async get(bucket: string, key: string, opts: { signal?: AbortSignal } = {}): Promise<Buffer | undefined> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: opts.signal });
      return Buffer.from(await r.Body!.transformToByteArray());
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /**
   * The object as a stream, for objects too large to hold in memory (a long job's execution.log); undefined when it
   * does not exist. The caller must consume or destroy `body`, or the connection stays taken.
   */
  async open(bucket: string, key: string, signal?: AbortSignal): Promise<{ body: Readable; contentLength: number | undefined } | undefined> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
      // In Node the SDK's body is an http.IncomingMessage (a Readable) with transform helpers mixed in.
      return { body: r.Body as Readable, contentLength: r.ContentLength };
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async exists(bucket: string, key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  async list(bucket: string, prefix: string): Promise<{ key: string; size: number }[]> {
    const out: { key: string; size: number }[] = [];
    let token: string | undefined;
    do {
      const r = await this.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of r.Contents ?? []) if (o.Key) out.push({ key: o.Key, size: o.Size ?? 0 });
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  /**
   * A time-limited GET link to one object, served as a download: `Content-Disposition: attachment` with the file's
   * name, and the content type it was stored with (`opts.contentType` when the caller knows it, else read with a
   * HEAD; `application/octet-stream` when there is none). Evidence is the portal's bytes — an HTML page among them —
   * and every organisation's links share one S3 origin: opened inline, such a page would run its scripts there.
   */
  async presignGet(bucket: string, key: string, expiresInSeconds: number, opts: { fileName?: string; contentType?: string } = {}): Promise<string> {
    const contentType = opts.contentType ?? await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
      .then((h) => h.ContentType, () => undefined);
    return getSignedUrl(this.client, new GetObjectCommand({
      Bucket: bucket, Key: key,
      ResponseContentDisposition: attachmentDisposition(opts.fileName ?? key.slice(key.lastIndexOf('/') + 1)),
      ResponseContentType: contentType || 'application/octet-stream',
    }), { expiresIn: expiresInSeconds });
  }

  async ensureBucket(bucket: string): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: bucket }));
    } catch (e) {
      if (!isNotFound(e)) throw e;
      await this.client.send(new CreateBucketCommand({ Bucket: bucket }));
    }
  }

  /** Reachability probe for /ready. */
  async ping(bucket: string): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: bucket }));
  }
}

/**
 * The attempt's evidence in the results bucket, `results/{orgId}/{userId}/{jobId}/`: downloads stored as they finish
 * (helpers.ts, through `evidenceStore`), the SRI pack's parsed XML, then what the job kept in memory (screenshots,
 * failure captures, parsed data) and execution.log last, each with its hash. Every S3 call is bounded and cancelled
 * with the attempt (JobAttempt.ioSignal): over its time, or when the worker shuts down.
 */
import { createHash } from 'node:crypto';
import { parseS3Uri, s3Uri } from '../../../shared/s3.ts';
import type { ResultArtifact, ResultFiles } from '../../../shared/schemas.ts';
import { messageOf, type JobAttempt } from '../attempt.ts';
import { boundWait } from '../deadline.ts';
import type { Artifact, EvidenceStore } from '../helpers.ts';
import { parseXmlEvidence, withParsedEvidence } from '../parse-evidence.ts';
import { S3_CALL_TIMEOUT_MS } from '../attempt.ts';

const sha256Of = (body: Buffer) => createHash('sha256').update(body).digest('hex');

const prefixOf = (a: JobAttempt) => `results/${a.job.orgId}/${a.job.userId}/${a.job.jobId}/`;

/** The job's prefix in the results bucket, for downloads stored as they finish. */
export function evidenceStore(a: JobAttempt): EvidenceStore {
  const bucket = a.config.s3ResultsBucket;
  const prefix = prefixOf(a);
  // A download's own bound (helpers.ts), and the attempt's shutdown: a worker that stops does not wait on it.
  return { put: (name, body, contentType, signal) => a.deps.blobStore.put(bucket, prefix + name, body, contentType, { signal: AbortSignal.any([signal, a.stopSignal()]) }) };
}

/**
 * The SRI pack's reading of the job's XML evidence into parsed data (parse-evidence.ts). Whatever happens here is
 * logged and never fails the job: the evidence is stored either way, and documents can be read from it again.
 */
export async function addParsedEvidence(a: JobAttempt): Promise<void> {
  const { deps, exec, artifacts, job } = a;
  const parser = deps.evidenceParser;
  if (!parser) return;
  try {
    await Promise.allSettled([...artifacts.storing]);
    const parsed = await parseXmlEvidence(parser, job.providerName, artifacts.downloads, {
      read: async (uri) => {
        const loc = parseS3Uri(uri);
        const signal = a.ioSignal();
        return loc ? boundWait(deps.blobStore.get(loc.bucket, loc.key, { signal }), S3_CALL_TIMEOUT_MS, `reading ${loc.key}`, signal) : undefined;
      },
      info: (line) => exec.info(line),
      warn: (line) => exec.warn(line),
    });
    if (parsed) artifacts.parsedData = withParsedEvidence(artifacts.parsedData, parsed);
  } catch (e) {
    exec.warn(`SRI: the XML evidence could not be read into parsed data: ${messageOf(e)}`);
  }
}

/**
 * Uploads what the job kept in memory (screenshots, parsed data, execution.log) and lists every evidence file with
 * its hash. Downloads were stored as they finished (helpers.ts); screenshots and downloads are stored as the portal
 * served them, parsed data with secret values replaced (SecretValues), execution.log redacted line by line.
 */
export async function uploadEvidence(a: JobAttempt): Promise<{ files: ResultFiles; list: ResultArtifact[]; uploadError?: Error }> {
  const { deps, exec, artifacts, secretValues } = a;
  const bucket = a.config.s3ResultsBucket;
  const prefix = prefixOf(a);
  const put = async (x: Artifact, kind: ResultArtifact['kind']): Promise<ResultArtifact> => {
    // Cancelled, not only given up on, over its time or when the worker shuts down (JobAttempt.ioSignal): an upload
    // never goes on in the background after the attempt stopped waiting for it.
    const signal = a.ioSignal();
    const uri = await boundWait(deps.blobStore.put(bucket, prefix + x.name, x.body, x.contentType, { signal }), S3_CALL_TIMEOUT_MS, `uploading ${x.name}`, signal);
    return { name: x.name, kind, uri, bytes: x.body.length, sha256: sha256Of(x.body), contentType: x.contentType };
  };
  const files: ResultFiles = { log: s3Uri(bucket, `${prefix}execution.log`), screenshots: [] };
  let uploadError: Error | undefined = artifacts.storeError;

  // A download the script did not await may still be on its way (runInBrowser waited for it unless the job was cut).
  await Promise.allSettled([...artifacts.storing]);
  const screenshots = artifacts.screenshots.filter((s) => s.body.length > 0);
  const shots: (ResultArtifact | undefined)[] = [];
  const failure: (ResultArtifact | undefined)[] = [];
  let parsed: ResultArtifact | undefined;
  const uploads: Promise<void>[] = screenshots.map(async (s, i) => { shots[i] = await put(s, 'screenshot'); });
  uploads.push(...artifacts.failure.map(async (x, i) => { failure[i] = await put(x, 'failure'); }));
  if (artifacts.parsedData !== undefined) {
    const body = Buffer.from(secretValues.stringify(artifacts.parsedData, 2), 'utf8');
    uploads.push(put({ name: 'parsed-data.json', body, contentType: 'application/json' }, 'parsedData').then((x) => { parsed = x; }));
  }
  for (const r of await Promise.allSettled(uploads)) {
    if (r.status === 'rejected') uploadError ??= r.reason instanceof Error ? r.reason : new Error(String(r.reason));
  }
  const downloads = [...artifacts.downloads];
  // The first download is the job's document; further ones are listed in `artifacts` and in execution.log.
  if (downloads[0]) files.download = downloads[0].uri;
  files.screenshots = shots.filter((s) => s !== undefined).map((s) => s.uri);
  if (parsed) files.parsedData = parsed.uri;
  if (uploadError) exec.error(`upload failed: ${uploadError.message}`);
  const count = screenshots.length + downloads.length + (artifacts.parsedData ? 1 : 0) + artifacts.failure.length;
  exec.info(`evidence: ${count} file(s) under s3://${bucket}/${prefix}`);
  const list: ResultArtifact[] = [];
  try {
    list.push(await put({ name: 'execution.log', body: Buffer.from(exec.text(), 'utf8'), contentType: 'text/plain; charset=utf-8' }, 'log'));
  } catch (e) {
    uploadError ??= e as Error;
  }
  list.push(...shots.filter((s) => s !== undefined), ...downloads, ...(parsed ? [parsed] : []), ...failure.filter((x) => x !== undefined), ...a.artifacts.recordings);
  return { files, list, uploadError };
}

/**
 * From a final job's parsed data to the documents table: the SRI parser's objects the worker wrote there
 * (src/shared/sri-document.ts, SRI_DOCUMENTS_KEY) are checked against the contract, and each valid one is upserted —
 * one row per access key, a later job fetching it again counted as seen again. An object that breaks the contract is
 * left out with its reason in the log; it never fails the result it came with.
 */
import { basename } from 'node:path';
import type { Logger } from '../../shared/logger.ts';
import { parseS3Uri } from '../../shared/s3.ts';
import type { ResultArtifact } from '../../shared/schemas.ts';
import { documentsOfParsedData, SRI_FILES_KEY, SriParsedFile } from '../../shared/sri-document.ts';
import type { Tx } from '../db/index.ts';
import { upsertDocument, type UpsertOutcome } from '../db/queries/documents.ts';

export interface RecordedDocuments { inserted: number; seenAgain: number; unchanged: number; rejected: number }

/**
 * The evidence file of a document: the artifact `{claveAcceso}.xml` (the flow's naming, ARCHITECTURE.md "S3
 * layout"), else the file the worker's parse says held it. Only objects under the organisation's own prefix of the
 * results bucket count, as for every artifact link.
 */
function evidenceOf(clave: string, artifacts: readonly ResultArtifact[], files: Map<string, string>, orgId: string, bucket: string): string | null {
  const ours = artifacts.filter((a) => {
    const loc = parseS3Uri(a.uri);
    return loc !== undefined && loc.bucket === bucket && loc.key.startsWith(`results/${orgId}/`) && !loc.key.includes('..');
  });
  const byName = (name: string) => ours.find((a) => a.name === name || basename(parseS3Uri(a.uri)?.key ?? '') === name)?.uri;
  const file = files.get(clave);
  return byName(`${clave}.xml`) ?? (file ? byName(file) : undefined) ?? null;
}

/** Upserts the documents of `parsed` (a job's parsed data) in the caller's transaction (RLS: the job's organisation). */
export async function recordDocuments(tx: Tx, input: {
  orgId: string; jobId: string; parsed: unknown; artifacts: readonly ResultArtifact[]; resultsBucket: string; logger: Logger;
}): Promise<RecordedDocuments> {
  const { documents, rejected } = documentsOfParsedData(input.parsed);
  const out: RecordedDocuments = { inserted: 0, seenAgain: 0, unchanged: 0, rejected: rejected.length };
  for (const r of rejected) {
    input.logger.warn({ orgId: input.orgId, jobId: input.jobId, index: r.index, claveAcceso: r.claveAcceso, reason: r.reason }, 'SRI document in parsed data left out: it does not match the parser output contract');
  }
  if (documents.length === 0) return out;
  const files = new Map<string, string>();
  const listed = (input.parsed as Record<string, unknown>)[SRI_FILES_KEY];
  if (Array.isArray(listed)) {
    for (const f of listed) {
      const p = SriParsedFile.safeParse(f);
      if (p.success && p.data.claveAcceso) files.set(p.data.claveAcceso, p.data.file);
    }
  }
  const count: Record<UpsertOutcome, keyof RecordedDocuments> = { inserted: 'inserted', 'seen-again': 'seenAgain', 'same-job': 'unchanged' };
  for (const doc of documents) {
    const evidence = evidenceOf(doc.claveAcceso, input.artifacts, files, input.orgId, input.resultsBucket);
    // A savepoint per document: one the database refuses (a value the contract lets through but a column does not)
    // is left out, and neither the other documents nor the job's result, in the same transaction, are lost.
    await tx.query('SAVEPOINT sri_document');
    try {
      out[count[await upsertDocument(tx, input.orgId, input.jobId, doc, evidence)]]++;
      await tx.query('RELEASE SAVEPOINT sri_document');
    } catch (err) {
      await tx.query('ROLLBACK TO SAVEPOINT sri_document');
      out.rejected++;
      input.logger.warn({ err, orgId: input.orgId, jobId: input.jobId, claveAcceso: doc.claveAcceso }, 'SRI document not recorded: the database refused it');
    }
  }
  return out;
}

/**
 * The worker's side of the SRI pack's documents (issue 16, docs/documents.md): after a job of the `sri` provider has
 * run, every `*.xml` file of its evidence goes through the SRI parser, and the objects it returns are added to the
 * job's parsed data under `sriDocuments`, with `sriFiles` saying what became of each file. The control plane keeps
 * one record per access key from them (src/control-plane/documents/record.ts).
 *
 * The parser is passed in (`EvidenceParser.parse`, src/sri/parse.ts's `parseSriDocument`), so that this file knows
 * the contract (src/shared/sri-document.ts) and nothing of XML. A file the parser refuses (malformed XML) or whose
 * object breaks the contract is listed with its error and the others go on: one bad file never costs a job its
 * documents, nor fails it. The evidence itself is never changed: parsed data is a reading of it.
 */
import type { ResultArtifact } from '../../shared/schemas.ts';
import { SRI_DOCUMENTS_KEY, SRI_FILES_KEY, SriDocument, type SriParsedFile } from '../../shared/sri-document.ts';

/** `parseSriDocument(xml, fileName?)`: one object per document (an array if a file held several); throws on malformed XML. */
export type SriParse = (xml: string, fileName?: string) => unknown;

export interface EvidenceParser {
  /** The provider whose jobs' XML evidence is parsed. @default 'sri' */
  readonly providerName?: string;
  readonly parse: SriParse;
}

export interface ParseEvidenceIo {
  /** The stored bytes of an evidence file (the worker reads back what it uploaded). */
  read(uri: string): Promise<Buffer | undefined>;
  info(line: string): void;
  warn(line: string): void;
}

/** XML files larger than this are listed with an error rather than parsed (an authorised document is a few KiB). */
export const MAX_XML_BYTES = 5 * 1024 * 1024;

export interface ParsedEvidence { documents: SriDocument[]; files: SriParsedFile[] }

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0]!.slice(0, 500);

/** Parses the XML evidence of a job of the parser's provider; undefined for a job of another provider or without XML. */
export async function parseXmlEvidence(parser: EvidenceParser, providerName: string, evidence: readonly ResultArtifact[], io: ParseEvidenceIo): Promise<ParsedEvidence | undefined> {
  if (providerName !== (parser.providerName ?? 'sri')) return undefined;
  const xmlFiles = evidence.filter((a) => /\.xml$/i.test(a.name));
  if (xmlFiles.length === 0) return undefined;
  const out: ParsedEvidence = { documents: [], files: [] };
  const seen = new Set<string>();
  for (const file of xmlFiles) {
    const fail = (error: string) => { out.files.push({ file: file.name, error }); io.warn(`SRI: ${file.name}: ${error}`); };
    if (file.bytes > MAX_XML_BYTES) { fail(`larger than ${MAX_XML_BYTES} bytes; not parsed`); continue; }
    let parsed: unknown;
    try {
      const bytes = await io.read(file.uri);
      if (!bytes) { fail('not found in the results bucket'); continue; }
      parsed = parser.parse(bytes.toString('utf8'), file.name);
    } catch (e) {
      fail(messageOf(e));
      continue;
    }
    for (const item of Array.isArray(parsed) ? parsed : [parsed]) {
      const doc = SriDocument.safeParse(item);
      if (!doc.success) {
        fail(`the parser's object does not match the documents contract: ${doc.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
        continue;
      }
      out.files.push({ file: file.name, claveAcceso: doc.data.claveAcceso });
      // The same document saved twice (the XML and a copy from the report) is one document.
      if (seen.has(doc.data.claveAcceso)) continue;
      seen.add(doc.data.claveAcceso);
      out.documents.push(doc.data);
    }
  }
  const failed = out.files.filter((f) => f.error).length;
  io.info(`SRI: ${out.documents.length} document(s) read from ${xmlFiles.length} XML file(s)${failed ? `, ${failed} not read` : ''}`);
  return out;
}

/**
 * The job's parsed data with the documents added: what the flow set stays as it was (a flow's own `sriDocuments`
 * is replaced — the key belongs to the platform); a job that set nothing gets an object of its own.
 */
export function withParsedEvidence(parsedData: Record<string, unknown> | undefined, parsed: ParsedEvidence): Record<string, unknown> {
  return { ...parsedData, [SRI_DOCUMENTS_KEY]: parsed.documents, [SRI_FILES_KEY]: parsed.files };
}

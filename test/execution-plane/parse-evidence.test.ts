/**
 * The worker's reading of an SRI job's XML evidence into parsed data (src/execution-plane/job/parse-evidence.ts):
 * every `*.xml` file of a job of the `sri` provider goes through the parser it is given, valid objects land under
 * `sriDocuments`, and a file the parser refuses or whose object breaks the contract is listed with its error in
 * `sriFiles` without costing the others. The parser is a stand-in here: src/sri/parse.ts is tested on its own.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_XML_BYTES, parseXmlEvidence, withParsedEvidence, type ParseEvidenceIo } from '../../src/execution-plane/job/parse-evidence.ts';
import type { ResultArtifact } from '../../src/shared/schemas.ts';
import { documentsOfParsedData } from '../../src/shared/sri-document.ts';
import { makeDocument } from '../support/sri-documents.ts';

const DOC_1 = makeDocument({ fecha: '2026-11-03', ruc: '1790011111001', razonSocial: 'Uno S.A.', secuencial: 1, sinImpuestos: '1.00', total: '1.00' });
const DOC_2 = makeDocument({ fecha: '2026-11-04', ruc: '1790011111001', razonSocial: 'Dos S.A.', secuencial: 2, sinImpuestos: '2.00', total: '2.00' });

function evidence(files: Record<string, string>): { list: ResultArtifact[]; io: ParseEvidenceIo & { lines: string[] } } {
  const bodies = new Map(Object.entries(files).map(([name, text]) => [`s3://sri-results/results/o/u/j/${name}`, Buffer.from(text)]));
  const lines: string[] = [];
  return {
    list: [...bodies].map(([uri, body]) => ({ name: uri.slice(uri.lastIndexOf('/') + 1), kind: 'download', uri, bytes: body.length, sha256: '0'.repeat(64), contentType: 'application/xml' })),
    io: { lines, read: async (uri) => bodies.get(uri), info: (l) => lines.push(`info ${l}`), warn: (l) => lines.push(`warn ${l}`) },
  };
}

/** Stands in for parseSriDocument: the XML text names the document it "holds". */
const byText = (xml: string, fileName?: string): unknown => {
  if (xml.startsWith('<broken')) throw new Error(`${fileName}: malformed XML at line 1`);
  if (xml === 'both') return [DOC_1, DOC_2];
  if (xml === 'bad-object') return { ...DOC_1, totales: { ...DOC_1.totales, importeTotal: 1 } };
  return xml === DOC_1.claveAcceso ? DOC_1 : DOC_2;
};

describe('reading an SRI job\'s XML evidence into parsed data', () => {
  it('parses every XML file of an sri job, leaves other files alone, and lists what became of each', async () => {
    const seen: string[] = [];
    const { list, io } = evidence({ [`${DOC_1.claveAcceso}.xml`]: DOC_1.claveAcceso, 'report.txt': 'x', [`${DOC_2.claveAcceso}.XML`]: DOC_2.claveAcceso });
    const out = await parseXmlEvidence({ parse: (xml, name) => { seen.push(name ?? ''); return byText(xml, name); } }, 'sri', list, io);
    assert.deepEqual(seen, [`${DOC_1.claveAcceso}.xml`, `${DOC_2.claveAcceso}.XML`], 'the parser gets each file name, for its errors');
    assert.deepEqual(out?.documents, [DOC_1, DOC_2]);
    assert.deepEqual(out?.files, [{ file: `${DOC_1.claveAcceso}.xml`, claveAcceso: DOC_1.claveAcceso }, { file: `${DOC_2.claveAcceso}.XML`, claveAcceso: DOC_2.claveAcceso }]);
    assert.deepEqual(io.lines, ['info SRI: 2 document(s) read from 2 XML file(s)']);
  });

  it('does nothing for a job of another provider, or one without XML evidence', async () => {
    const { list, io } = evidence({ 'a.xml': DOC_1.claveAcceso });
    assert.equal(await parseXmlEvidence({ parse: byText }, 'demo', list, io), undefined);
    assert.equal(await parseXmlEvidence({ parse: byText }, 'sri', evidence({ 'a.pdf': '%PDF' }).list, io), undefined);
    assert.deepEqual(io.lines, []);
  });

  it('keeps the good documents when a file is malformed, missing, too large or gives an object that breaks the contract', async () => {
    const { list, io } = evidence({ 'broken.xml': '<broken', 'good.xml': DOC_1.claveAcceso, 'odd.xml': 'bad-object' });
    list.push({ name: 'gone.xml', kind: 'download', uri: 's3://sri-results/results/o/u/j/gone.xml', bytes: 10, sha256: '', contentType: 'application/xml' });
    list.push({ name: 'huge.xml', kind: 'download', uri: 's3://sri-results/results/o/u/j/huge.xml', bytes: MAX_XML_BYTES + 1, sha256: '', contentType: 'application/xml' });
    const out = await parseXmlEvidence({ parse: byText }, 'sri', list, io);
    assert.deepEqual(out?.documents, [DOC_1]);
    assert.deepEqual(out?.files.map((f) => [f.file, f.claveAcceso ?? null, f.error?.replace(/:.*/s, '') ?? null]), [
      ['broken.xml', null, 'broken.xml'], ['good.xml', DOC_1.claveAcceso, null], ['odd.xml', null, 'the parser\'s object does not match the documents contract'],
      ['gone.xml', null, 'not found in the results bucket'], ['huge.xml', null, `larger than ${MAX_XML_BYTES} bytes; not parsed`],
    ]);
    assert.match(out!.files[0]!.error!, /malformed XML/);
    assert.match(out!.files[2]!.error!, /totales\.importeTotal/);
    assert.equal(io.lines.at(-1), 'info SRI: 1 document(s) read from 5 XML file(s), 4 not read');
  });

  it('takes several documents from one file, and one document saved twice once', async () => {
    const { list, io } = evidence({ 'both.xml': 'both', 'copy.xml': DOC_1.claveAcceso });
    const out = await parseXmlEvidence({ parse: byText }, 'sri', list, io);
    assert.deepEqual(out?.documents, [DOC_1, DOC_2]);
    assert.equal(out?.files.length, 3);
  });

  it('adds the documents to what the flow set, in the shape the control plane reads', async () => {
    const { list, io } = evidence({ 'a.xml': DOC_1.claveAcceso });
    const out = (await parseXmlEvidence({ parse: byText }, 'sri', list, io))!;
    const merged = withParsedEvidence({ rows: 3, sriDocuments: ['the flow\'s own'] }, out);
    assert.equal(merged['rows'], 3);
    assert.deepEqual(documentsOfParsedData(merged), { documents: [DOC_1], rejected: [] });
    assert.deepEqual(documentsOfParsedData(withParsedEvidence(undefined, out)).documents, [DOC_1]);
  });
});

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { authorisationXml, sriDataset } from '../../src/sri/generate.ts';
import { parseSriDocument } from '../../src/sri/parse.ts';
import { tempDir } from '../support/services.ts';
import { runSri } from '../support/cli.ts';

describe('sri parse sri FILE…', () => {
  const dir = tempDir('sri-parse-');
  after(() => dir.remove());
  const docs = sriDataset().slice(0, 3);
  const files = docs.map((d, i) => {
    const file = join(dir.path, `${d.claveAcceso}.xml`);
    // Bare, wrapped, bare: the command reads both.
    writeFileSync(file, i === 1 ? authorisationXml(d) : d.xml);
    return file;
  });

  it('prints one JSON object per line, and reports a malformed file on stderr with exit 1 while printing the others', async () => {
    const bad = join(dir.path, 'roto.xml');
    writeFileSync(bad, '<factura><infoTributaria></factura>');
    const r = await runSri(['parse', 'sri', files[0]!, bad, files[1]!, files[2]!]);
    assert.equal(r.code, 1);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 3);
    assert.deepEqual(lines.map((l) => JSON.parse(l) as unknown), [
      parseSriDocument(docs[0]!.xml), parseSriDocument(authorisationXml(docs[1]!)), parseSriDocument(docs[2]!.xml),
    ]);
    assert.match(r.stderr, new RegExp(`^error SRI_XML_INVALID: ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not well-formed XML at line 1`, 'm'));
  });

  it('prints one JSON array with --json and exits 0', async () => {
    const r = await runSri(['parse', 'sri', '--json', ...files]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { claveAcceso: string }[];
    assert.deepEqual(out.map((d) => d.claveAcceso), docs.map((d) => d.claveAcceso));
  });

  it('knows only the sri parser (a usage error, exit 2)', async () => {
    const r = await runSri(['parse', 'other', files[0]!]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Allowed choices are sri/);
  });
});

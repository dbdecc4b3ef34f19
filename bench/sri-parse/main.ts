/**
 * `npm run bench:sri-parse [-- --seconds N]`
 *
 * Parser throughput (docs/benchmarks.md "SRI parser"): documents per second through parseSriDocument
 * (src/sri/parse.ts) over the generator's dataset (sriDataset, every type and version), three ways:
 *   1. bare documents, as the issuer signed them;
 *   2. the `<autorizacion>` wrapper with the document as CDATA (what the portal's XML download and the flow store);
 *   3. the authorisation service's whole SOAP answer.
 * Each runs for N seconds (default 3) after a one-second warm-up; the best of three rounds is printed, with the
 * average document size.
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { soapAuthorisation } from '../../src/embedded/sri-portal/files.ts';
import { authorisationXml, sriDataset } from '../../src/sri/generate.ts';
import { parseSriDocument } from '../../src/sri/parse.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '3' } } });
const seconds = Number(values.seconds);
const docs = sriDataset();
const inputs: Record<string, string[]> = {
  'bare document': docs.map((d) => d.xml),
  '<autorizacion> wrapper (CDATA)': docs.map((d) => authorisationXml(d)),
  'SOAP answer of autorizacionComprobante': docs.map((d) => soapAuthorisation(d.claveAcceso, d)),
};

function run(xmls: readonly string[], ms: number): number {
  const end = performance.now() + ms;
  let n = 0;
  let problems = 0;
  const start = performance.now();
  while (performance.now() < end) {
    for (const x of xmls) problems += parseSriDocument(x).problemas.length;
    n += xmls.length;
  }
  if (problems > 0) throw new Error(`the generated documents should parse without problems (${problems})`);
  return n / ((performance.now() - start) / 1000);
}

console.log(`machine: ${cpus().length} CPU (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
console.log(`dataset: ${docs.length} documents (sriDataset), ${new Date().toISOString()}`);
for (const [name, xmls] of Object.entries(inputs)) {
  const bytes = xmls.reduce((s, x) => s + Buffer.byteLength(x), 0) / xmls.length;
  run(xmls, 1000);
  const best = Math.max(run(xmls, seconds * 1000), run(xmls, seconds * 1000), run(xmls, seconds * 1000));
  console.log(`${name.padEnd(40)} ${Math.round(best).toLocaleString('en-US').padStart(8)} documents/s  (${Math.round(bytes).toLocaleString('en-US')} bytes average)`);
}

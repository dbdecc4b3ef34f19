/**
 * The trace cleaner (src/execution-plane/job/trace-zip.ts) on a small trace made by hand in Playwright's format:
 * credentials and request bodies out of trace.network, cookie calls and secrets out of trace.trace, stacks left out,
 * response bodies and screencast frames copied as they were; the result is a zip `unzip` reads.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import JSZip from 'jszip';
import { cleanTrace } from '../../src/execution-plane/job/trace-zip.ts';
import { Redactor } from '../../src/execution-plane/job/redactor.ts';
import { tempDir } from '../support/services.ts';

const COOKIE = 'sid-0123456789abcdef';
const PASSWORD = 'pw-correct-horse';
const PORTAL_COOKIE = 'fresh-token-from-portal';

type Entry = [name: string, body: string | Buffer, compress?: boolean];

/** A zip as Playwright writes one (deflated entries, some stored), made here with JSZip. */
async function writeZip(entries: Entry[]): Promise<Buffer> {
  const zip = new JSZip();
  for (const [name, body, compress = true] of entries) zip.file(name, body, { compression: compress ? 'DEFLATE' : 'STORE' });
  return zip.generateAsync({ type: 'nodebuffer' });
}

const lines = (...events: unknown[]) => events.map((e) => JSON.stringify(e)).join('\n') + '\n';

function sampleTrace(): Promise<Buffer> {
  const network = lines(
    { type: 'resource-snapshot', snapshot: {
      request: { method: 'POST', url: 'http://portal/login', headers: [{ name: 'Cookie', value: `sid=${COOKIE}` }, { name: 'Accept', value: 'text/html' }],
        cookies: [{ name: 'sid', value: COOKIE }], postData: { mimeType: 'application/x-www-form-urlencoded', text: '', params: [{ name: 'password', value: PASSWORD }], _file: 'resources/post.dat' } },
      response: { status: 303, headers: [{ name: 'Set-Cookie', value: `sid=${PORTAL_COOKIE}; HttpOnly` }], cookies: [{ name: 'sid', value: PORTAL_COOKIE }],
        content: { size: 20, mimeType: 'text/html', _file: 'resources/page.html' } },
    } },
  );
  const trace = lines(
    { type: 'context-options', version: 8 },
    { type: 'before', callId: 'c1', class: 'Frame', method: 'fill', params: { selector: '#password', value: PASSWORD } },
    { type: 'log', callId: 'c1', message: `  fill("${PASSWORD}")` },
    { type: 'before', callId: 'c2', class: 'BrowserContext', method: 'cookies', params: { urls: [] } },
    { type: 'after', callId: 'c2', result: { cookies: [{ name: 'sid', value: 'unknown-to-the-redactor' }] } },
    { type: 'frame-snapshot', snapshot: { html: ['INPUT', { __playwright_value_: PASSWORD, id: 'password' }] } },
  );
  return writeZip([
    ['trace.trace', trace], ['trace.network', network], ['trace.stacks', '{"files":["/app/dist/worker.js"]}'],
    ['resources/post.dat', `password=${PASSWORD}`], ['resources/page.html', '<h1>Invoices</h1>', false],
    ['screencast/page@1-1.jpeg', Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3])],
  ]);
}

describe('trace-zip: cleaning a Playwright trace', () => {
  it('removes cookies, request bodies, cookie call results, stacks and secrets, and keeps the pages and frames', async () => {
    const redactor = new Redactor([COOKIE, PASSWORD]);
    const { zip, removedResources } = await cleanTrace(await sampleTrace(), (t) => redactor.redact(t));
    assert.equal(removedResources, 1);
    const names = Object.values((await JSZip.loadAsync(zip)).files).filter((f) => !f.dir).map((f) => f.name).sort();
    assert.deepEqual(names, ['resources/page.html', 'screencast/page@1-1.jpeg', 'trace.network', 'trace.trace']);

    const dir = tempDir('sri-trace-zip-');
    try {
      const file = join(dir.path, 'trace.zip');
      writeFileSync(file, zip);
      assert.match(execFileSync('unzip', ['-t', file], { encoding: 'utf8' }), /No errors detected/);
      const network = execFileSync('unzip', ['-p', file, 'trace.network'], { encoding: 'utf8' });
      const trace = execFileSync('unzip', ['-p', file, 'trace.trace'], { encoding: 'utf8' });
      const har = (JSON.parse(network.trim()) as { snapshot: any }).snapshot;
      assert.deepEqual(har.request.headers, [{ name: 'Cookie', value: '[removed]' }, { name: 'Accept', value: 'text/html' }]);
      assert.deepEqual(har.request.cookies, []);
      assert.equal(har.request.postData, undefined);
      assert.deepEqual(har.response.headers, [{ name: 'Set-Cookie', value: '[removed]' }]);
      assert.deepEqual(har.response.cookies, []);
      assert.equal(har.response.content._file, 'resources/page.html');
      for (const secret of [COOKIE, PASSWORD, PORTAL_COOKIE, 'unknown-to-the-redactor']) {
        assert.ok(!network.includes(secret) && !trace.includes(secret), `${secret} is gone`);
      }
      assert.match(trace, /"method":"fill","params":\{"selector":"#password","value":"\[redacted\]"\}/);
      assert.match(trace, /"__playwright_value_":"\[redacted\]"/);
      assert.equal(execFileSync('unzip', ['-p', file, 'resources/page.html'], { encoding: 'utf8' }), '<h1>Invoices</h1>');
      assert.deepEqual([...execFileSync('unzip', ['-p', file, 'screencast/page@1-1.jpeg'])], [0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]);
    } finally {
      dir.remove();
    }
  });

  it('refuses what is not a zip, so no uncleaned trace is stored', async () => {
    await assert.rejects(cleanTrace(Buffer.from('not a zip at all, just text'), (t) => t), /not a zip/);
  });
});

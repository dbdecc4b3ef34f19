/**
 * Redaction on a real worker (redis-server, s3rver, Chromium): a job's secrets arrive sealed in its message, the
 * script fills them with helpers.fillSecret (the value never enters the script's source), and a page echoes them
 * back in every form — as they are, URL-encoded, JSON-escaped, base64 at each alignment (base64("user:" + secret)
 * among them), hex, line by line for a multi-line secret, in the console, in its URL, in a text download — while
 * the script logs them whole and split over two lines, puts them in its result and throws them in its error.
 * None of it may reach execution.log, the live log, the result message or the worker's own log file. The portal's
 * evidence is not rewritten (docs/security.md "Evidence and redaction"): the download is stored as served, and in
 * parsed-data.json only values that *are* a secret (in any encoding) are replaced.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parseLogEntry } from '../../src/shared/job-logs.ts';
import { keys } from '../../src/shared/keys.ts';
import type { Redis } from '../../src/shared/redis.ts';
import type { ResultMessage } from '../../src/shared/schemas.ts';
import { sealJobSecrets, transportKeyring } from '../../src/shared/transport-secrets.ts';
import type { WorkerHandle } from '../../src/execution-plane/worker.ts';
import type { WorkerConfig } from '../../src/execution-plane/config.ts';
import { waitFor } from '../support/services.ts';
import { startServicesHarness, type ServicesHarness } from './support/services-harness.ts';
import { startWorkerOn } from './support/worker-harness.ts';
import { push, setSession, signedJob, testOrg } from './support/jobs.ts';

const SECRET = `Sk-${randomBytes(10).toString('hex')}/+&"<é%`;
const NOTE = [`line-one-${randomBytes(6).toString('hex')}`, `line-two-${randomBytes(6).toString('hex')}`, `line-three-${randomBytes(6).toString('hex')}`].join('\n');
const COOKIE = `ck-${randomBytes(10).toString('hex')}`;
const SESSION_CREDENTIAL = `session-version-${randomBytes(6).toString('hex')}`;

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const html = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Every form the page shows the secret in (computed here, independently of the redactor). */
function echoedForms(s: string): string[] {
  return [s, encodeURIComponent(s), JSON.stringify({ k: s }), b64(s), b64(`x${s}`), b64(`user:${s}`), Buffer.from(`ab${s}`).toString('base64url'), Buffer.from(s).toString('hex')];
}

/** A page that echoes what was typed into it, in every form. */
async function startEchoPortal(): Promise<{ url: string; received: string[]; close(): Promise<void> }> {
  const received: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const send = (type: string, body: string, headers: Record<string, string> = {}) => { res.writeHead(200, { 'content-type': type, ...headers }); res.end(body); };
    if (url.pathname === '/form') {
      return send('text/html; charset=utf-8', `<!doctype html><title>Form</title><form method="post" action="/echo">
        <input id="secret" name="secret"><textarea id="note" name="note"></textarea><button id="submit">go</button></form>`, { 'set-cookie': 'seen=1; Path=/' });
    }
    if (url.pathname === '/echo' && req.method === 'POST') {
      let body = '';
      req.on('data', (d: Buffer) => { body += d.toString(); });
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const s = form.get('secret') ?? '';
        const note = form.get('note') ?? '';
        received.push(s);
        const items = [...echoedForms(s), ...echoedForms(note), ...note.split(/\r?\n/)].map((f) => `<li>${html(f)}</li>`).join('');
        send('text/html; charset=utf-8', `<!doctype html><title>Echo</title><ul id="forms">${items}</ul><p id="cookie"></p>
          <a id="dl" href="/download?s=${encodeURIComponent(s)}">file</a><a id="go" href="/landing?token=${encodeURIComponent(s)}">go</a>
          <script>document.getElementById('cookie').textContent = document.cookie;
          console.log('console raw ' + ${JSON.stringify(s).replace(/</g, '\\u003c')});
          console.log(JSON.stringify({ value: ${JSON.stringify(s).replace(/</g, '\\u003c')} }));</script>`);
      });
      return;
    }
    if (url.pathname === '/download') {
      const s = url.searchParams.get('s') ?? '';
      return send('text/plain; charset=utf-8', `token=${s}\nbasic=${b64(`user:${s}`)}\n`, { 'content-disposition': 'attachment; filename="export.txt"' });
    }
    if (url.pathname === '/landing') return send('text/html', '<!doctype html><title>Landing</title><p id="landed">ok</p>');
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

const SCRIPT = `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/form');
  await helpers.fillSecret('#secret', 'apiKey');
  await helpers.fillSecret('#note', 'pemNote');
  await page.click('#submit');
  await page.waitForSelector('#forms');
  const forms = await page.$$eval('#forms li', (els) => els.map((e) => e.textContent));
  for (const f of forms) helpers.log('echo: ' + f);
  helpers.log('cookies: ' + await page.textContent('#cookie'));
  const raw = await page.inputValue('#secret').catch(() => forms[0]);
  helpers.log('first half ' + forms[0].slice(0, 9));
  helpers.log(forms[0].slice(9) + ' second half');
  const file = await helpers.download(() => page.click('#dl'));
  await page.click('#go');
  await page.waitForSelector('#landed');
  helpers.log('now at ' + page.url());
  helpers.setResult({ forms, raw, url: page.url(), file });
  throw new Error('giving up, secret was ' + forms[0] + ' aka ' + forms.slice(1, 4).join(' | '));
}
`;

describe('redaction of secrets filled with fillSecret, on a real worker', () => {
  let h: ServicesHarness<Awaited<ReturnType<typeof startEchoPortal>>>;
  let portal: Awaited<ReturnType<typeof startEchoPortal>>;
  let redis: Redis;
  let worker: WorkerHandle;
  let config: WorkerConfig;
  let results: Map<string, ResultMessage>;

  before(async () => {
    h = await startServicesHarness({ portal: startEchoPortal, logPrefix: 'sri-redaction-logs-' });
    ({ portal, redis, results } = h);
    ({ worker, config } = await startWorkerOn(h));
  });

  after(async () => {
    await worker?.stop({ graceMs: 5000 });
    await h?.stop();
  });

  const object = async (uri: string | undefined): Promise<string> => (await h.object(uri)).toString('utf8');


  it('keeps every form of the secrets and the cookie out of the log, live log, result and worker log; keeps the download as served and replaces only secret values in parsed data', async () => {
    const org = testOrg('redact');
    await setSession(redis, org, 'user-1', {
      cookies: [{ name: 'sess', value: COOKIE, url: portal.url }], credentials: { apiKey: SESSION_CREDENTIAL }, connectedAt: Date.now(),
    });
    const job = signedJob(org, SCRIPT, { metadata: { base: portal.url } });
    job.secrets = sealJobSecrets(transportKeyring(config), job, { apiKey: SECRET, pemNote: NOTE });
    assert.ok(!JSON.stringify(job).includes(SECRET.slice(0, 12)), 'the message carries the secret sealed only');
    await push(redis, org, job);
    const r = await waitFor(() => results.get(job.jobId), { timeoutMs: 60_000, what: 'the result' });

    // The job's secret won over the session's credential of the same name, and reached the page.
    assert.deepEqual(portal.received, [SECRET]);
    assert.equal(r.status, 'failed');
    assert.equal(r.error?.code, 'SCRIPT_ERROR');
    assert.match(r.error!.message, /giving up, secret was \[redacted\] aka \[redacted\]/);

    const log = await object(r.files.log);
    assert.match(log, /filled secret "apiKey" into #secret/);
    assert.match(log, /job secrets: "apiKey", "pemNote"/);
    assert.match(log, /echo: \[redacted\]/);
    assert.match(log, /CONSOLE:info console raw \[redacted\]/);
    const parsed = await object(r.files.parsedData);
    // The download is evidence: stored byte for byte as the portal served it, secret and all.
    const download = await object(r.files.download);
    assert.equal(download, `token=${SECRET}\nbasic=${b64(`user:${SECRET}`)}\n`);
    // Parsed data: each value that is a secret, in any of its encodings, is replaced; values that only contain one
    // (the page's JSON, base64 of "user:" + secret, a URL with it in the query) are the portal's data and stay.
    const data = JSON.parse(parsed) as { forms: string[]; raw: string; url: string };
    // The textarea submitted the note's lines with CRLF (the page echoes what it received); HTML shows them as LF.
    const sentNote = NOTE.replace(/\n/g, '\r\n');
    const isSecret = new Set([SECRET, sentNote].flatMap((s) => [s, encodeURIComponent(s), b64(s), Buffer.from(s).toString('hex')]));
    assert.deepEqual(data.forms.slice(0, 16), [...echoedForms(SECRET), ...echoedForms(sentNote)].map((f) => (isSecret.has(f) ? '[redacted]' : f.replace(/\r\n/g, '\n'))));
    assert.deepEqual(data.forms.slice(16), ['[redacted]', '[redacted]', '[redacted]'], 'each line of a multi-line secret');
    assert.equal(data.raw, '[redacted]');
    assert.equal(data.url, `${portal.url}/landing?token=${encodeURIComponent(SECRET)}`);
    assert.ok(!log.includes('secret values in this text file were replaced'));
    const stored = (await redis.get(keys.jobResult(job.jobId)))!;
    const live = (await redis.xrange(keys.jobLogs(job.jobId), '-', '+'))
      .flatMap(([id, fields]) => { const e = parseLogEntry(id, fields); return e && 'lines' in e ? e.lines : []; });
    assert.ok(live.length > 10, 'the live log was written');
    await waitFor(() => readFileSync(join(h.logDir, 'worker-combined.log'), 'utf8').includes(job.jobId), { what: 'the worker log line' });
    const workerLog = readFileSync(join(h.logDir, 'worker-combined.log'), 'utf8');

    // The messages of each log, joined without separators: a value split over two lines would show here.
    const logMessages = log.split('\n').map((l) => l.replace(/^\S+ \S+\s+/, '')).join('');
    const liveMessages = live.map((l) => l.message).join('');
    const texts: Record<string, string> = {
      'execution.log': log, 'execution.log messages joined': logMessages, 'live log': JSON.stringify(live), 'live log messages joined': liveMessages,
      'result message': JSON.stringify(r), 'stored result': stored, 'worker log': workerLog,
    };
    const forbidden = [...echoedForms(SECRET), ...echoedForms(NOTE), ...NOTE.split('\n'), COOKIE, SESSION_CREDENTIAL,
      // JSON-escaped inside the result / live log JSON:
      JSON.stringify(SECRET).slice(1, -1), JSON.stringify(JSON.stringify(SECRET)).slice(1, -1)];
    for (const [name, text] of Object.entries(texts)) {
      for (const f of forbidden) assert.ok(!text.includes(f), `${name} holds ${JSON.stringify(f)}`);
    }
  });
});

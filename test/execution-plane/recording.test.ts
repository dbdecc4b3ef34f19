/**
 * Recordings on a real worker (redis-server, s3rver, Chromium): a job whose message says `record` keeps a Playwright
 * trace (trace.zip) and a video (video.webm) of its page under its results prefix, listed in the result —
 * `onFailure` only when it fails, `always` on success too — and the trace holds no cookie value or typed secret.
 *
 * Playwright's video encoder is ffmpeg, looked up in its browsers folder (PLAYWRIGHT_BROWSERS_PATH); with a system
 * ffmpeg (Debian's, as the worker image installs it) the test links it there before Playwright loads. Without any
 * ffmpeg the video assertions are replaced by the log line saying why there is none.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tempDir } from '../support/services.ts';
import type { ResultMessage } from '../../src/shared/schemas.ts';

const SYSTEM_FFMPEG = '/usr/bin/ffmpeg';
const browsersDir = tempDir('sri-record-pw-');
// The file's own temporary folder (os.tmpdir() reads TMPDIR at each call): the look for left-over sri-record-*
// folders below then sees this file's worker's only, not those of a file running beside it (scripts/run-tests.mjs
// runs it two at a time, PAIRED_FILES).
const ownTmp = tempDir('sri-recording-test-');
process.env['TMPDIR'] = ownTmp.path;
const pw = JSON.parse(readFileSync(new URL('../../node_modules/playwright-core/browsers.json', import.meta.url), 'utf8')) as { browsers: { name: string; revision: string }[] };
const ffmpegDir = `ffmpeg-${pw.browsers.find((b) => b.name === 'ffmpeg')!.revision}`;
const preset = process.env['PLAYWRIGHT_BROWSERS_PATH'];
// A browsers folder given from outside (PLAYWRIGHT_BROWSERS_PATH=/empty shows the no-ffmpeg path) is used as it is.
const hasFfmpeg = preset !== undefined ? existsSync(join(preset, ffmpegDir, 'ffmpeg-linux')) : existsSync(SYSTEM_FFMPEG);
if (preset === undefined && hasFfmpeg) {
  mkdirSync(join(browsersDir.path, ffmpegDir));
  symlinkSync(SYSTEM_FFMPEG, join(browsersDir.path, ffmpegDir, 'ffmpeg-linux'));
  process.env['PLAYWRIGHT_BROWSERS_PATH'] = browsersDir.path;
}
// Loaded after PLAYWRIGHT_BROWSERS_PATH is set: Playwright reads it once, when it loads.
const { setSession, signedJob, testOrg } = await import('./support/jobs.ts');
const { startWorkerHarness } = await import('./support/worker-harness.ts');
type WorkerHarness = Awaited<ReturnType<typeof startWorkerHarness>>;

/** Logs in with the session cookie loaded, types the password with fillSecret, then fails (or not). */
const script = (fail: boolean) => `export default async function run({ page, payload, helpers }) {
  await page.goto(payload.base + '/login');
  await page.fill('#user', 'ana');
  await helpers.fillSecret('#password', 'password');
  await page.click('#submit');
  await page.waitForSelector('#invoices');
  ${fail ? "throw new Error('the flow found no invoice total');" : "helpers.setResult({ ok: true });"}
}
`;

const recordingDirs = () => new Set(readdirSync(tmpdir()).filter((n) => n.startsWith('sri-record-') && !n.startsWith('sri-record-pw-') && !n.startsWith('sri-record-check-')));

describe('recordings of a job\'s page', () => {
  let h: WorkerHarness;
  let dirsBefore: Set<string>;
  before(async () => {
    h = await startWorkerHarness();
    dirsBefore = recordingDirs();
  });
  after(async () => {
    await h?.stop();
    browsersDir.remove();
    ownTmp.remove();
  });

  const recordingsOf = (r: ResultMessage) => (r.artifacts ?? []).filter((a) => a.kind === 'trace' || a.kind === 'video');
  const leftoverDirs = () => [...recordingDirs()].filter((d) => !dirsBefore.has(d));

  it('keeps a trace and a video of a failed onFailure job, listed in the result, with no cookie value or typed secret in the trace', async () => {
    const org = testOrg('rec-fail');
    const session = h.session();
    await setSession(h.redis, org, 'user-1', session);
    const r = await h.run(org, signedJob(org, script(true), { metadata: { base: h.portal.url }, maxAttempts: 1, record: 'onFailure' }), 90_000);
    assert.equal(r.status, 'failed', JSON.stringify(r.error));
    assert.equal(r.error?.code, 'SCRIPT_ERROR');
    const log = (await h.object(r.files.log)).toString('utf8');
    const kept = recordingsOf(r);
    assert.deepEqual(kept.map((a) => a.name).sort(), hasFfmpeg ? ['trace.zip', 'video.webm'] : ['trace.zip'], log);
    for (const a of kept) assert.ok(a.uri.includes(`/${r.jobId}/`), `${a.uri} is under the job's results prefix`);

    const trace = await h.object(kept.find((a) => a.name === 'trace.zip')!.uri);
    assert.equal(kept.find((a) => a.name === 'trace.zip')!.bytes, trace.length);
    const dir = tempDir('sri-record-check-');
    try {
      const zipFile = join(dir.path, 'trace.zip');
      writeFileSync(zipFile, trace);
      const listing = execFileSync('unzip', ['-l', zipFile], { encoding: 'utf8' });
      assert.match(listing, /trace\.trace/);
      assert.match(listing, /trace\.network/);
      assert.match(listing, /screencast\/.*\.jpeg/, 'screenshots are on');
      assert.doesNotMatch(listing, /trace\.stacks/, 'the worker\'s own stacks are left out');
      execFileSync('unzip', ['-q', zipFile, '-d', join(dir.path, 'x')]);
      const events = execFileSync('unzip', ['-p', zipFile, 'trace.trace'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      assert.match(events, /"type":"frame-snapshot"/, 'DOM snapshots are on');
      assert.match(events, /"method":"goto"/);
      const network = execFileSync('unzip', ['-p', zipFile, 'trace.network'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      assert.match(network, /"name":"Cookie","value":"\[removed\]"/, 'the Cookie header is there, without its value');
      // No file of the trace holds the session cookie's value or the password fillSecret typed (posted in the form).
      const files = execFileSync('find', [join(dir.path, 'x'), '-type', 'f'], { encoding: 'utf8' }).trim().split('\n');
      for (const f of files) {
        const body = readFileSync(f);
        assert.ok(!body.includes(session.cookies[0]!.value), `${f} holds no cookie value`);
        assert.ok(!body.includes(h.portal.password), `${f} holds no typed secret`);
      }
    } finally {
      dir.remove();
    }
    if (hasFfmpeg) {
      const video = await h.object(kept.find((a) => a.name === 'video.webm')!.uri);
      assert.ok(video.length > 0);
      assert.equal(video.subarray(0, 4).toString('hex'), '1a45dfa3', 'a Matroska/WebM file');
      assert.equal(kept.find((a) => a.name === 'video.webm')!.contentType, 'video/webm');
    } else {
      assert.match(log, /recording: no video — ffmpeg is not installed/);
    }
    assert.match(log, /recording: trace\.zip stored/);
    assert.deepEqual(leftoverDirs(), [], 'the private recording folder is removed');
  });

  it('stores nothing for an onFailure job that succeeds', async () => {
    const org = testOrg('rec-ok');
    await setSession(h.redis, org, 'user-1', h.session());
    const r = await h.run(org, signedJob(org, script(false), { metadata: { base: h.portal.url }, maxAttempts: 1, record: 'onFailure' }), 90_000);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    assert.deepEqual(recordingsOf(r), []);
    const listed = await h.store.list(h.config.s3ResultsBucket, `results/${org}/user-1/${r.jobId}/`);
    assert.ok(!listed.some((o) => /trace\.zip|video\.webm/.test(o.key)), listed.map((o) => o.key).join(', '));
    assert.deepEqual(leftoverDirs(), []);
  });

  it('keeps both for an always job that succeeds', async () => {
    const org = testOrg('rec-always');
    await setSession(h.redis, org, 'user-1', h.session());
    const r = await h.run(org, signedJob(org, script(false), { metadata: { base: h.portal.url }, maxAttempts: 1, record: 'always' }), 90_000);
    assert.equal(r.status, 'done', JSON.stringify(r.error));
    const kept = recordingsOf(r);
    assert.deepEqual(kept.map((a) => a.name).sort(), hasFfmpeg ? ['trace.zip', 'video.webm'] : ['trace.zip']);
    for (const a of kept) assert.ok((await h.object(a.uri)).length > 0);
    assert.deepEqual(leftoverDirs(), []);
  });

  it('does not store a recording over WORKER_MAX_RECORDING_BYTES, and says so in the log', async () => {
    const small = await startWorkerHarness({ WORKER_MAX_RECORDING_BYTES: '2048' });
    try {
      const org = testOrg('rec-big');
      await setSession(small.redis, org, 'user-1', small.session());
      const r = await small.run(org, signedJob(org, script(false), { metadata: { base: small.portal.url }, maxAttempts: 1, record: 'always' }), 90_000);
      assert.equal(r.status, 'done', JSON.stringify(r.error));
      assert.deepEqual(recordingsOf(r), []);
      const log = (await small.object(r.files.log)).toString('utf8');
      assert.match(log, /recording: trace\.zip is \d+ bytes, over WORKER_MAX_RECORDING_BYTES \(2048\); it was not stored/);
    } finally {
      await small.stop();
    }
  });
});

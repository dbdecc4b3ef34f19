/**
 * `npm run bench:live-view`: the hand-off's live view (docs/dashboard.md "Hand-off") measured end to end on real
 * services — the API as the tests start it (redis-server, s3rver, PGlite), one worker with its Chromium, the demo
 * portal. A job opens the portal's CAPTCHA page and hands off; one viewer follows GET /api/jobs/{id}/live (SSE) and
 * sends input through POST /api/jobs/{id}/live/input, as the dashboard does.
 *
 * - **Latency**: from sending one typed character (the POST leaves the client) to the first frame event that shows
 *   it. The focused field's caret blinks, so frames also come without input: a frame "shows" the input when its
 *   JPEG differs from every frame received since the previous input (identical pixels encode to identical bytes).
 * - **Bandwidth per viewer**: bytes of the event stream a second, and frames a second, while idle (only the caret
 *   blinks) and while the person types (a character every 200 ms).
 *
 * Options: --samples N (latency samples, default 40), --seconds S (each bandwidth phase, default 10).
 */
import { randomUUID } from 'node:crypto';
import { cpus, loadavg, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { startDemoPortal } from '../../src/embedded/demo-portal.ts';
import { startWorker } from '../../src/execution-plane/worker.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { SseParser } from '../../src/shared/sse.ts';
import { testWorkerConfig } from '../../test/execution-plane/support/jobs.ts';
import { startTestApi } from '../../test/support/api.ts';
import { tempDir } from '../../test/support/services.ts';

const { values } = parseArgs({ options: { samples: { type: 'string', default: '40' }, seconds: { type: 'string', default: '10' } } });
const SAMPLES = Number(values.samples);
const PHASE_MS = Number(values.seconds) * 1000;

function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown';
  return `${cpus().length} CPU (${cpu}), ${Math.round(totalmem() / 2 ** 30 * 10) / 10} GiB, node ${process.version}, ${new Date().toISOString()}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function main(): Promise<void> {
  process.stdout.write(`machine: ${machine()}\n`);
  const logs = tempDir('sri-bench-live-');
  const portal = await startDemoPortal({ port: 0 });
  const t = await startTestApi();
  const worker = await startWorker(testWorkerConfig({ redisUrl: t.redisUrl, s3Endpoint: t.config.s3Endpoint, logDir: logs.path, extra: { EXECUTION_TIMEOUT: '600000' } }),
    { logger: createLogger({ name: 'worker', level: 'warn', logDir: logs.path, stdout: false }), orgRefreshMs: 100 });
  try {
    const reg = await fetch(`${t.api.url}/api/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `bench-${randomUUID()}@example.com`, password: 'correct-horse-42', name: 'Bench', orgName: 'Bench' }),
    }).then((r) => r.json()) as { token: string };
    const auth = { authorization: `Bearer ${reg.token}` };
    const call = async (method: string, path: string, body?: unknown) => {
      const r = await fetch(t.api.url + path, { method, headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
      const text = await r.text();
      if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
      return text ? JSON.parse(text) as any : undefined;
    };
    await call('POST', '/api/providers/demo/connect', { cookies: [] });
    const flow = await call('POST', '/api/flows', {
      providerId: 'demo', version: '1.0.0', name: 'Bench', steps: [
        { type: 'navigate', url: `${portal.url}/captcha` }, { type: 'handoff', reason: 'bench', timeoutMs: 900_000 },
      ],
    });
    await call('POST', `/api/flows/${flow.flow.id}/activate`, {});
    const { jobId } = await call('POST', '/api/run', { providerId: 'demo' });
    while ((await call('GET', `/api/jobs/${jobId}/status`)).status !== 'waiting_for_user') await sleep(100);

    // The viewer: every frame with its arrival time and size; bytes of the whole stream.
    const frames: Array<{ at: number; data: string; bytes: number }> = [];
    let streamBytes = 0;
    const abort = new AbortController();
    const res = await fetch(`${t.api.url}/api/jobs/${jobId}/live`, { headers: auth, signal: abort.signal });
    const parser = new SseParser();
    void (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of res.body!) {
          const c = chunk as Uint8Array;
          streamBytes += c.byteLength;
          const now = performance.now();
          for (const e of parser.feed(decoder.decode(c, { stream: true }))) {
            if (e.event === 'frame') frames.push({ at: now, data: (JSON.parse(e.data) as { data: string }).data, bytes: e.data.length });
          }
        }
      } catch { /* aborted */ }
    })();
    while (frames.length === 0) await sleep(50);
    // Focus the answer field (45-85 % of the 720 px viewport).
    await call('POST', `/api/jobs/${jobId}/live/input`, { type: 'click', x: 640, y: 468 });
    await sleep(1500);

    const latencies: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const seen = new Set(frames.slice(-6).map((f) => f.data));
      const from = frames.length;
      const t0 = performance.now();
      await call('POST', `/api/jobs/${jobId}/live/input`, { type: 'type', text: String.fromCharCode(97 + (i % 26)) });
      const deadline = t0 + 10_000;
      let hit: number | undefined;
      while (hit === undefined && performance.now() < deadline) {
        hit = frames.slice(from).find((f) => !seen.has(f.data))?.at;
        if (hit === undefined) await sleep(2);
      }
      if (hit !== undefined) latencies.push(hit - t0);
      await sleep(300 + Math.random() * 200);
    }
    // Clear the field, then the bandwidth phases.
    await call('POST', `/api/jobs/${jobId}/live/input`, { type: 'key', key: 'Control+a' });
    await call('POST', `/api/jobs/${jobId}/live/input`, { type: 'key', key: 'Backspace' });
    await sleep(1000);
    const phase = async (name: string, act: boolean) => {
      const b0 = streamBytes;
      const f0 = frames.length;
      const t0 = performance.now();
      let i = 0;
      while (performance.now() - t0 < PHASE_MS) {
        if (act) void call('POST', `/api/jobs/${jobId}/live/input`, { type: 'type', text: String.fromCharCode(97 + (i++ % 26)) });
        await sleep(200);
      }
      const secs = (performance.now() - t0) / 1000;
      const fs = frames.slice(f0);
      const avg = fs.length ? Math.round(fs.reduce((n, f) => n + f.bytes, 0) / fs.length) : 0;
      process.stdout.write(`${name}: ${Math.round((streamBytes - b0) / secs / 1024)} KiB/s of events, ${(fs.length / secs).toFixed(1)} frames/s, ${Math.round(avg / 1024)} KiB a frame (base64)\n`);
    };
    await phase('idle (caret blinking)', false);
    await phase('typing, 5 characters/s', true);
    abort.abort();
    await call('POST', `/api/jobs/${jobId}/handoff`, { answer: 'giveUp' });

    process.stdout.write(`latency, input → first frame showing it (${latencies.length} of ${SAMPLES} samples): p50 ${pct(latencies, 50).toFixed(0)} ms, p90 ${pct(latencies, 90).toFixed(0)} ms, p99 ${pct(latencies, 99).toFixed(0)} ms, min ${Math.min(...latencies).toFixed(0)} ms, max ${Math.max(...latencies).toFixed(0)} ms\n`);
  } finally {
    await worker.stop({ graceMs: 5000 });
    await t.stop();
    await portal.close();
    logs.remove();
  }
}

await main();

/**
 * The live-log batcher (src/execution-plane/logs/batcher.ts), its Redis sink and the follower in
 * src/shared/job-logs.ts, against a real redis-server. Each test uses its own job id.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { LogBatcher, MemoryLogSink, type LogLine, type LogSink } from '../../src/execution-plane/logs/batcher.ts';
import { createJobLogBatcher, RedisLogSink } from '../../src/execution-plane/logs/redis-sink.ts';
import { loadWorkerConfig } from '../../src/execution-plane/config.ts';
import { followJobLogs, type LogEntry } from '../../src/shared/job-logs.ts';
import { keys } from '../../src/shared/keys.ts';
import { createRedis, type Redis } from '../../src/shared/redis.ts';
import { startTestRedis, TEST_SIGNING_SECRET, waitFor } from '../support/services.ts';

const line = (i: number, message = `line ${i}`): LogLine => ({ ts: 1_700_000_000_000 + i, level: 'info', stream: 'script', message });
const numbered = (lines: LogLine[]) => lines.filter((l) => l.stream === 'script').map((l) => l.message);

describe('live-log batcher', () => {
  let server: Awaited<ReturnType<typeof startTestRedis>>;
  let redis: Redis;

  before(async () => {
    server = await startTestRedis();
    redis = createRedis(server.url);
  });
  after(async () => {
    redis.disconnect();
    await server.stop();
  });

  it('sends a batch when it reaches the line cap, keeps order, and close() sends the rest', async () => {
    const sink = new MemoryLogSink();
    const b = new LogBatcher({ jobId: randomUUID(), sink, maxLines: 10, flushIntervalMs: 60_000 });
    for (let i = 0; i < 35; i++) b.append(line(i));
    await waitFor(() => sink.batches.length === 3, { what: 'three full batches' });
    assert.deepEqual(sink.batches.map((x) => x.length), [10, 10, 10], 'the 5 remaining lines wait for the interval or close');
    const summary = await b.close();
    assert.deepEqual(summary, { written: 35, droppedLines: 0, droppedBatches: 0 });
    assert.deepEqual(sink.batches.map((x) => x.length), [10, 10, 10, 5]);
    assert.deepEqual(numbered(sink.lines()), Array.from({ length: 35 }, (_, i) => `line ${i}`));
    assert.deepEqual(sink.ended, summary, 'the sink is told the totals');
    b.append(line(99));
    assert.equal(sink.lines().length, 35, 'lines after close are ignored');
  });

  it('sends a batch when it reaches the byte cap (UTF-8 bytes)', async () => {
    const sink = new MemoryLogSink();
    const b = new LogBatcher({ jobId: randomUUID(), sink, maxLines: 1000, maxBytes: 100, flushIntervalMs: 60_000 });
    for (let i = 0; i < 9; i++) b.append(line(i, 'x'.repeat(30)));
    // 3 × 30 = 90 bytes fit; a 4th would pass 100, so it starts the next batch: two sent, the third still open.
    await waitFor(() => sink.batches.length === 2, { what: 'two batches by size' });
    assert.deepEqual(sink.batches.map((x) => x.length), [3, 3]);
    // '€' is 3 bytes in UTF-8: 20 of them are 60 bytes, so one such line and one 30-byte line fill a batch (90).
    for (let i = 0; i < 4; i++) b.append(line(i, i % 2 ? 'x'.repeat(30) : '€'.repeat(20)));
    await b.close();
    assert.deepEqual(sink.batches.map((x) => x.length), [3, 3, 3, 2, 2]);
  });

  it('sends a partial batch after the flush interval without waiting for close', async () => {
    const sink = new MemoryLogSink();
    const b = new LogBatcher({ jobId: randomUUID(), sink, maxLines: 1000, flushIntervalMs: 20 });
    b.append(line(1));
    b.append(line(2));
    await waitFor(() => sink.batches.length === 1, { what: 'the interval flush' });
    assert.deepEqual(numbered(sink.batches[0]!), ['line 1', 'line 2']);
    b.append(line(3));
    await waitFor(() => sink.batches.length === 2, { what: 'a second interval flush' });
    assert.deepEqual(await b.close(), { written: 3, droppedLines: 0, droppedBatches: 0 });
  });

  it('drops whole batches when the sink falls behind, counts them, says so in the log, and never blocks append', async () => {
    const written: LogLine[][] = [];
    const slowSink: LogSink = {
      async write(_jobId, lines) {
        await sleep(30);
        written.push(lines);
      },
    };
    const b = new LogBatcher({ jobId: randomUUID(), sink: slowSink, maxLines: 10, maxPendingBatches: 2, flushIntervalMs: 60_000 });
    // 100 lines appended synchronously: batch 1 is being written, batch 2 waits, batches 3–10 find 2 pending.
    for (let i = 0; i < 100; i++) b.append(line(i));
    // append() returned 100 times before the sink finished a single write: it never waits on the sink.
    assert.deepEqual(b.stats(), { written: 0, droppedLines: 80, droppedBatches: 8 });
    assert.equal(b.pendingBatches, 2);
    await waitFor(() => written.length === 2, { what: 'the two accepted batches' });
    for (let i = 100; i < 105; i++) b.append(line(i));
    const summary = await b.close();
    assert.deepEqual(summary, { written: 26, droppedLines: 80, droppedBatches: 8 }, '20 + the notice + 5');
    assert.deepEqual(numbered(written.flat()), [...Array.from({ length: 20 }, (_, i) => `line ${i}`), ...Array.from({ length: 5 }, (_, i) => `line ${100 + i}`)]);
    const notice = written[2]![0]!;
    assert.equal(notice.stream, 'worker');
    assert.equal(notice.level, 'warn');
    assert.match(notice.message, /dropped 80 line\(s\) in 8 batch\(es\)/);
  });

  it('counts a failed write as dropped and keeps going', async () => {
    let calls = 0;
    const errors: unknown[] = [];
    const got: LogLine[][] = [];
    const flaky: LogSink = {
      write(_jobId, lines) {
        if (++calls === 1) return Promise.reject(new Error('redis is down'));
        got.push(lines);
        return Promise.resolve();
      },
    };
    const b = new LogBatcher({ jobId: randomUUID(), sink: flaky, maxLines: 2, flushIntervalMs: 60_000, onError: (e) => errors.push(e) });
    for (let i = 0; i < 4; i++) b.append(line(i));
    assert.deepEqual(await b.close(), { written: 2, droppedLines: 2, droppedBatches: 1 });
    assert.equal(errors.length, 1);
    assert.deepEqual(numbered(got.flat()), ['line 2', 'line 3']);
  });

  it('close() gives up on a stuck sink after its deadline and counts what was unsent as dropped', async () => {
    const stuck: LogSink = { write: () => new Promise<void>(() => { /* never settles */ }) };
    const b = new LogBatcher({ jobId: randomUUID(), sink: stuck, maxLines: 5, flushIntervalMs: 60_000 });
    for (let i = 0; i < 12; i++) b.append(line(i));
    const summary = await b.close({ timeoutMs: 100 });
    // Batch 1 (5) is in the sink's hands and may still land; batch 2 (5) and the last (2) were never taken.
    assert.deepEqual(summary, { written: 0, droppedLines: 7, droppedBatches: 2 });
  });

  it('applies the redact function before a line is batched', async () => {
    const sink = new MemoryLogSink();
    const b = new LogBatcher({ jobId: randomUUID(), sink, redact: (m) => m.replaceAll('hunter2', '[REDACTED]') });
    b.append(line(1, 'password is hunter2'));
    await b.close();
    assert.equal(sink.lines()[0]!.message, 'password is [REDACTED]');
  });

  it('writes each batch as one stream entry with the TTL set and the stream capped (MAXLEN ~)', async () => {
    const jobId = randomUUID();
    const key = keys.jobLogs(jobId);
    const sink = new RedisLogSink(redis, { maxBatches: 10, ttlSeconds: 600 });
    const b = new LogBatcher({ jobId, sink, maxLines: 3, flushIntervalMs: 60_000 });
    for (let i = 0; i < 7; i++) b.append(line(i));
    assert.deepEqual(await b.close(), { written: 7, droppedLines: 0, droppedBatches: 0 });
    const entries = await redis.xrange(key, '-', '+');
    assert.equal(entries.length, 4, 'three batches and the end entry');
    assert.deepEqual(entries.slice(0, 3).map(([, f]) => f[0]), ['lines', 'lines', 'lines']);
    const lines = entries.slice(0, 3).flatMap(([, f]) => JSON.parse(f[1]!) as LogLine[]);
    assert.deepEqual(lines, Array.from({ length: 7 }, (_, i) => line(i)));
    assert.deepEqual(entries[3]![1], ['end', JSON.stringify({ written: 7, droppedLines: 0, droppedBatches: 0 })]);
    const ttl = await redis.ttl(key);
    assert.ok(ttl > 0 && ttl <= 600, `TTL ${ttl}`);

    // MAXLEN ~ trims whole macro-nodes (stream-node-max-entries, 100 by default): far below what was written.
    const capped = randomUUID();
    for (let i = 0; i < 400; i++) await sink.write(capped, [line(i)]);
    const len = await redis.xlen(keys.jobLogs(capped));
    assert.ok(len >= 10 && len <= 110, `stream length ${len} is capped near 10`);
  });

  it('createJobLogBatcher takes its settings from the worker configuration', async () => {
    const config = loadWorkerConfig({ SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, WORKER_LOG_BATCH_MAX_LINES: '2', WORKER_LOG_TTL_SECONDS: '77' });
    const jobId = randomUUID();
    const b = createJobLogBatcher(redis, config, jobId);
    for (let i = 0; i < 4; i++) b.append(line(i));
    await b.close();
    assert.equal(await redis.xlen(keys.jobLogs(jobId)), 3, 'two batches of 2 and the end entry');
    const ttl = await redis.ttl(keys.jobLogs(jobId));
    assert.ok(ttl > 0 && ttl <= 77, `TTL ${ttl}`);
  });

  it('followJobLogs yields batches live as they are written, and stops on abort', async () => {
    const jobId = randomUUID();
    const ac = new AbortController();
    const seen: LogEntry[] = [];
    const clientsBefore = Number(/connected_clients:(\d+)/.exec(await redis.info('clients'))?.[1]);
    const following = (async () => {
      for await (const entry of followJobLogs(redis, jobId, '0', ac.signal, { blockMs: 1000 })) seen.push(entry);
    })();
    // The follower's own connection is up before anything is written; the first batch is seen before the job ends.
    await waitFor(async () => Number(/connected_clients:(\d+)/.exec(await redis.info('clients'))?.[1]) > clientsBefore, { what: 'the follower connection' });
    const b = createJobLogBatcher(redis, loadWorkerConfig({ SCRIPT_SIGNING_SECRET: TEST_SIGNING_SECRET, WORKER_LOG_FLUSH_INTERVAL_MS: '10' }), jobId);
    b.append(line(1));
    await waitFor(() => seen.length === 1, { what: 'the first batch, before the job ends' });
    assert.deepEqual('lines' in seen[0]! && seen[0].lines, [line(1)]);
    b.append(line(2));
    b.append(line(3));
    await b.close();
    await waitFor(() => seen.some((e) => 'end' in e), { what: 'the end entry' });
    assert.deepEqual(seen.flatMap((e) => ('lines' in e ? e.lines : [])), [line(1), line(2), line(3)]);
    assert.deepEqual(seen.at(-1), { id: seen.at(-1)!.id, end: { written: 3, droppedLines: 0, droppedBatches: 0 } });
    ac.abort();
    await following;
    await waitFor(async () => Number(/connected_clients:(\d+)/.exec(await redis.info('clients'))?.[1]) === clientsBefore, { what: 'the follower connection to close' });

    // From '0' a late follower reads the backlog.
    const late = new AbortController();
    const backlog: LogEntry[] = [];
    for await (const entry of followJobLogs(redis, jobId, '0', late.signal)) {
      backlog.push(entry);
      if ('end' in entry) late.abort();
    }
    assert.deepEqual(backlog.map((e) => e.id), seen.map((e) => e.id));

    // From '$' a follower skips the backlog and gets only what is written after it started reading.
    const followers = async () => (await redis.client('LIST') as string).split('\n').filter((c) => c.includes(`name=sri-logs-follow-${jobId}`));
    await waitFor(async () => (await followers()).length === 0, { what: 'the earlier followers to disconnect' });
    const fresh = new AbortController();
    const onlyNew: LogEntry[] = [];
    const tail = (async () => {
      for await (const entry of followJobLogs(redis, jobId, '$', fresh.signal, { blockMs: 1000 })) onlyNew.push(entry);
    })();
    await waitFor(async () => (await followers()).some((c) => c.includes('cmd=xread')), { what: 'the follower blocked in XREAD' });
    await new RedisLogSink(redis, { maxBatches: 10, ttlSeconds: 60 }).write(jobId, [line(4)]);
    await waitFor(() => onlyNew.length === 1, { what: 'the new batch' });
    assert.deepEqual('lines' in onlyNew[0]! && onlyNew[0].lines, [line(4)]);
    fresh.abort();
    await tail;
  });
});

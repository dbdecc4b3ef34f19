/**
 * GET /api/jobs/{id}/logs against real services (redis-server, s3rver, PGlite). The test plays the worker with the
 * worker's own log batcher and Redis sink (createJobLogBatcher), so the stream format is the real one.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { recordResultMessage } from '../../src/control-plane/results/listener.ts';
import { startApi } from '../../src/control-plane/server.ts';
import { createJobLogBatcher, type LiveLogSettings } from '../../src/execution-plane/logs/redis-sink.ts';
import type { LogBatcher } from '../../src/execution-plane/logs/batcher.ts';
import { keys } from '../../src/shared/keys.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { createRedis } from '../../src/shared/redis.ts';
import { s3Uri } from '../../src/shared/s3.ts';
import type { ResultMessage } from '../../src/shared/schemas.ts';
import type { SseEvent } from '../../src/shared/sse.ts';
import { openLogs, startTestApi, type LogStreamClient, type TestApi, type TestOrg } from '../support/api.ts';
import { waitFor } from '../support/services.ts';

const HEARTBEAT_MS = 200;
/** The worker's settings, with a short flush interval so lines leave as soon as the test writes them. */
const LIVE: LiveLogSettings = {
  logBatchMaxLines: 500, logBatchMaxBytes: 64 * 1024, logFlushIntervalMs: 10, logMaxPendingBatches: 8,
  logStreamMaxBatches: 1000, logTtlSeconds: 600,
};

const linesOf = (events: SseEvent[]) => events.filter((e) => e.event === 'line').map((e) => JSON.parse(e.data) as { ts: number; level: string; stream: string; message: string });
const messagesOf = (c: LogStreamClient) => linesOf(c.events).map((l) => l.message);
const endOf = (c: LogStreamClient) => c.events.find((e) => e.event === 'end');

/** Appends lines and waits until the batcher has handed them to Redis (one stream entry per call). */
async function writeBatch(b: LogBatcher, ...messages: string[]): Promise<void> {
  const before = b.stats().written;
  for (const m of messages) b.log('info', 'script', m);
  b.flush();
  await waitFor(() => b.stats().written >= before + messages.length, { what: 'batch written to Redis' });
}

describe('GET /api/jobs/{id}/logs', () => {
  let t: TestApi;
  let a: TestOrg;
  let b: TestOrg;
  const clients: LogStreamClient[] = [];
  const open = async (jobId: string, token: string, headers: Record<string, string> = {}, query = '') => {
    const c = await openLogs(t.api.url, jobId, token, headers, query);
    clients.push(c);
    return c;
  };

  before(async () => {
    t = await startTestApi({ LOGS_HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_MS) });
    [a, b] = await Promise.all([t.createOrg(), t.createOrg()]);
  });
  after(async () => {
    for (const c of clients) c.abort();
    await t?.stop();
  });

  it('streams a running job\'s lines as events while the worker writes them, in order, and ends at the end entry', async () => {
    const jobId = await t.runJob(a);
    await t.redis.set(keys.jobStatus(jobId), 'running');
    const c = await open(jobId, a.token);
    assert.equal(c.status, 200);
    assert.match(c.contentType, /^text\/event-stream/);
    const batcher = createJobLogBatcher(t.redis, LIVE, jobId);

    await writeBatch(batcher, 'step 1', 'step 2');
    await waitFor(() => messagesOf(c).length === 2, { what: 'the first batch' });
    batcher.log('warn', 'console', 'a console warning');
    batcher.log('error', 'worker', 'multi\nline');
    batcher.flush();
    await waitFor(() => messagesOf(c).length === 4, { what: 'the second batch' });
    await writeBatch(batcher, 'step 3');
    await waitFor(() => messagesOf(c).length === 5, { what: 'the third batch' });
    const summary = await batcher.close();
    await c.closed;

    assert.deepEqual(messagesOf(c), ['step 1', 'step 2', 'a console warning', 'multi\nline', 'step 3']);
    const lines = linesOf(c.events);
    assert.deepEqual(lines.map((l) => `${l.level}/${l.stream}`), ['info/script', 'info/script', 'warn/console', 'error/worker', 'info/script']);
    for (const l of lines) assert.deepEqual(Object.keys(l).sort(), ['level', 'message', 'stream', 'ts']);
    assert.ok(lines.every((l) => Math.abs(l.ts - Date.now()) < 60_000));
    assert.deepEqual(JSON.parse(endOf(c)!.data), summary);
    assert.deepEqual(summary, { written: 5, droppedLines: 0, droppedBatches: 0 });
    // The SSE ids are the stream's entry ids: one per batch, on its last line, then the end entry's.
    const entryIds = (await t.redis.xrange(keys.jobLogs(jobId), '-', '+')).map(([id]) => id);
    assert.equal(entryIds.length, 4);
    assert.deepEqual([...new Set(c.events.map((e) => e.id).filter((id) => id !== ''))], entryIds);
    assert.equal(c.events.filter((e) => e.event === 'line')[1]!.id, entryIds[0], 'the last line of the first batch');
    assert.equal(c.events.at(-1)!.event, 'end', 'nothing after the end');
  });

  it('resumes after Last-Event-ID with the lines that followed, none repeated or lost', async () => {
    const jobId = await t.runJob(a);
    const batcher = createJobLogBatcher(t.redis, LIVE, jobId);
    await writeBatch(batcher, 'one', 'two');
    await writeBatch(batcher, 'three');
    const first = await open(jobId, a.token);
    await waitFor(() => messagesOf(first).length === 3, { what: 'the lines so far' });
    const lastId = first.events.at(-1)!.id;
    first.abort();
    await first.closed;

    await writeBatch(batcher, 'four', 'five'); // while nobody listens
    const again = await open(jobId, a.token, { 'last-event-id': lastId });
    await waitFor(() => messagesOf(again).length === 2, { what: 'the lines after the resume point' });
    await writeBatch(batcher, 'six');
    await batcher.close();
    await again.closed;
    assert.deepEqual(messagesOf(again), ['four', 'five', 'six']);
    assert.ok(endOf(again));

    // A client that resumes after the end of a finished job gets the end again, and nothing else.
    await t.redis.set(keys.jobStatus(jobId), 'done');
    const late = await open(jobId, a.token, { 'last-event-id': again.events.at(-1)!.id });
    await late.closed;
    assert.deepEqual(late.events.map((e) => e.event), ['end']);
  });

  it('stops reading Redis as soon as the client disconnects: the shared reader drops the stream at its next read', async () => {
    // An API of its own, so that no other test's stream keeps its shared reader busy.
    const redis = createRedis(t.redisUrl);
    const other = await startApi(t.config, { db: t.db, redis, blobStore: t.blobStore, logger: createLogger({ name: 'api-3', level: 'silent' }) });
    try {
      const jobId = await t.runJob(a);
      const clients = async () => (await t.redis.call('CLIENT', 'LIST') as string).split('\n');
      /** Shared readers by client id (the other API's connects at its first stream). */
      const readers = async () => new Map((await clients()).filter((l) => / name=sri-api-logs /.test(l)).map((l) => [/^id=(\d+)/.exec(l)?.[1], l]));
      const before = await readers();
      const c = await openLogs(other.url, jobId, a.token);
      const mine = await waitFor(async () => [...(await readers())].find(([id, l]) => !before.has(id) && / flags=b /.test(l))?.[0],
        { what: 'the other API\'s shared reader blocking on the stream' });
      assert.equal((await clients()).filter((l) => l.includes('name=sri-logs-follow-')).length, 0, 'no connection of its own');
      c.abort();
      // Within one blocking read (1 s): with nothing left to watch the reader stops reading.
      await waitFor(async () => !/ flags=b /.test((await readers()).get(mine) ?? ''), { timeoutMs: 2500, what: 'the shared reader to stop blocking' });
    } finally {
      await other.close();
      redis.disconnect();
    }
  });

  it('sends a heartbeat comment while the job is quiet', async () => {
    const jobId = await t.runJob(a);
    const c = await open(jobId, a.token);
    await waitFor(() => (c.raw().match(/^: heartbeat$/gm) ?? []).length >= 2, { what: 'two heartbeats' });
    assert.deepEqual(c.events, [], 'comments are not events');
    c.abort();
  });

  it('answers another organisation\'s job, unknown ids and bad requests with JSON errors, streaming nothing', async () => {
    const jobId = await t.runJob(a);
    for (const headers of [{}, { accept: 'text/plain' }] as Record<string, string>[]) {
      for (const query of ['', '?follow=false']) {
        const other = await open(jobId, b.token, headers, query);
        assert.equal(other.status, 404, `${JSON.stringify(headers)} ${query}`);
        assert.match(other.contentType, /^application\/json/);
        assert.equal(JSON.parse(await other.text).error.code, 'NOT_FOUND');
        const unknown = await open(randomUUID(), a.token, headers, query);
        assert.equal(unknown.status, 404);
        assert.equal(JSON.parse(await unknown.text).error.code, 'NOT_FOUND');
      }
    }
    const anonymous = await fetch(`${t.api.url}/api/jobs/${jobId}/logs`);
    assert.equal(anonymous.status, 401);
    assert.equal((await anonymous.json() as any).error.code, 'UNAUTHENTICATED');
    const badId = await open(jobId, a.token, { 'last-event-id': 'abc' });
    assert.equal(badId.status, 400);
    const body = JSON.parse(await badId.text);
    assert.equal(body.error.code, 'VALIDATION_FAILED');
    assert.equal(body.error.details[0].field, 'last-event-id');
    const badFollow = await open(jobId, a.token, {}, '?follow=maybe');
    assert.equal(JSON.parse(await badFollow.text).error.code, 'VALIDATION_FAILED');
    const openapi = await (await fetch(`${t.api.url}/docs/json`)).json() as any;
    const documented = openapi.paths['/api/jobs/{id}/logs'].get;
    assert.deepEqual(documented.parameters.map((p: { in: string; name: string }) => `${p.in}:${p.name}`).sort(),
      ['header:accept', 'header:last-event-id', 'path:id', 'query:follow']);
  });

  it('serves a finished job\'s execution.log from S3 as text/plain, and its stream as events only when asked for them', async () => {
    const jobId = await t.runJob(a);
    const batcher = createJobLogBatcher(t.redis, LIVE, jobId);
    await writeBatch(batcher, 'live 1', 'live 2');
    const summary = await batcher.close();
    const key = `results/${a.orgId}/${a.userId}/${jobId}/execution.log`;
    const stored = `${'2026-01-05T10:00:00.000Z INFO  line of the stored log\n'.repeat(2000)}done\n`;
    await t.blobStore.put(t.config.s3ResultsBucket, key, stored, 'text/plain; charset=utf-8');
    const result: ResultMessage = {
      jobId, orgId: a.orgId, userId: a.userId, providerId: 'demo', success: true, status: 'done', duration: 5, attempt: 1,
      workerId: 'logs-test', finishedAt: new Date().toISOString(), files: { log: s3Uri(t.config.s3ResultsBucket, key), screenshots: [] },
    };
    await t.redis.set(keys.jobStatus(jobId), 'done');
    const deps = { db: t.db, blobStore: t.blobStore, resultsBucket: t.config.s3ResultsBucket, logger: createLogger({ name: 't', level: 'silent' }) };
    assert.equal(await recordResultMessage(deps, a.orgId, result), 'recorded');

    for (const [headers, query] of [[{ accept: 'text/plain' }, ''], [{ accept: '*/*' }, ''], [{ accept: 'text/event-stream' }, '?follow=false']] as const) {
      const r = await open(jobId, a.token, headers, query);
      assert.equal(r.status, 200);
      assert.equal(r.contentType, 'text/plain; charset=utf-8', `${JSON.stringify(headers)} ${query}`);
      assert.equal(await r.text, stored);
    }
    const replay = await open(jobId, a.token, { accept: 'text/event-stream' });
    await replay.closed;
    assert.deepEqual(messagesOf(replay), ['live 1', 'live 2']);
    assert.deepEqual(JSON.parse(endOf(replay)!.data), summary);

    await t.redis.del(keys.jobLogs(jobId)); // the stream expired
    const expired = await open(jobId, a.token, { accept: 'text/event-stream' });
    assert.match(expired.contentType, /^text\/plain/);
    assert.equal(await expired.text, stored);
  });

  it('explains a missing log: LOG_NOT_READY while the job has not finished, LOG_NOT_FOUND once it finished without one', async () => {
    const jobId = await t.runJob(a);
    const notReady = await open(jobId, a.token, { accept: 'text/plain' }, '?follow=false');
    assert.equal(notReady.status, 409);
    const ready = JSON.parse(await notReady.text).error;
    assert.equal(ready.code, 'LOG_NOT_READY');
    assert.match(ready.message, /is queued; .*--follow/);

    const cancel = await fetch(`${t.api.url}/api/jobs/${jobId}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${a.token}` } });
    assert.equal(cancel.status, 200);
    for (const headers of [{ accept: 'text/plain' }, { accept: 'text/event-stream' }]) {
      const missing = await open(jobId, a.token, headers);
      assert.equal(missing.status, 404);
      const err = JSON.parse(await missing.text).error;
      assert.equal(err.code, 'LOG_NOT_FOUND');
      assert.match(err.message, /\(cancelled\) has no execution\.log/);
    }
  });

  it('ends the stream of a job that finished without an end entry (its worker died)', async () => {
    const jobId = await t.runJob(a);
    await t.redis.set(keys.jobStatus(jobId), 'running');
    const c = await open(jobId, a.token);
    const batcher = createJobLogBatcher(t.redis, LIVE, jobId);
    await writeBatch(batcher, 'last words');
    await waitFor(() => messagesOf(c).length === 1, { what: 'the line' });
    await t.redis.set(keys.jobStatus(jobId), 'dead'); // the queue gave up on it; no end entry ever comes
    await c.closed;
    assert.deepEqual(JSON.parse(endOf(c)!.data), { status: 'dead' });
    assert.deepEqual(messagesOf(c), ['last words']);
  });

  it('follows a retried job past the end entry of its earlier attempt to the end of the last one', async () => {
    const jobId = await t.runJob(a);
    const first = createJobLogBatcher(t.redis, LIVE, jobId);
    await writeBatch(first, 'attempt 1');
    await first.close();
    const second = createJobLogBatcher(t.redis, LIVE, jobId);
    await writeBatch(second, 'attempt 2');
    const c = await open(jobId, a.token);
    await waitFor(() => messagesOf(c).length === 2, { what: 'both attempts\' lines' });
    // Arriving on the same response shows the first attempt's end entry did not end it.
    await writeBatch(second, 'still attempt 2');
    await waitFor(() => messagesOf(c).length === 3, { what: 'a line written after the client read both attempts' });
    const summary = await second.close();
    await c.closed;
    assert.deepEqual(messagesOf(c), ['attempt 1', 'attempt 2', 'still attempt 2']);
    assert.deepEqual(c.events.filter((e) => e.event === 'end').map((e) => JSON.parse(e.data)), [summary]);
    assert.deepEqual(summary, { written: 2, droppedLines: 0, droppedBatches: 0 });
  });

  it('stops although a client opened a connection and has sent nothing on it (a spare connection of Node\'s fetch held it ~70 s)', async () => {
    const redis = createRedis(t.redisUrl);
    const other = await startApi(t.config, { db: t.db, redis, blobStore: t.blobStore, logger: createLogger({ name: 'api-3', level: 'silent' }) });
    const spare = connect(Number(new URL(other.url).port), '127.0.0.1');
    spare.on('error', () => {});
    const bound = new AbortController();
    try {
      await once(spare, 'connect');
      await waitFor(() => new Promise<boolean>((r) => other.app.server.getConnections((_e, n) => r(n >= 1))), { what: 'the API has the connection' });
      // Generous: without the fix the close waits for this client, which never lets go.
      const closed = await Promise.race([other.close().then(() => true), sleep(30_000, false, { signal: bound.signal }).catch(() => false)]);
      assert.ok(closed, 'the API closed while a connection without a request was open');
      if (!spare.destroyed) await once(spare, 'close');
    } finally {
      bound.abort();
      spare.destroy();
      await other.close();
      redis.disconnect();
    }
  });

  it('closes its open streams when the API stops; the client resumes on another instance with Last-Event-ID', async () => {
    const redis = createRedis(t.redisUrl);
    const other = await startApi(t.config, { db: t.db, redis, blobStore: t.blobStore, logger: createLogger({ name: 'api-2', level: 'silent' }) });
    try {
      const jobId = await t.runJob(a);
      const batcher = createJobLogBatcher(t.redis, LIVE, jobId);
      await writeBatch(batcher, 'before the restart');
      const c = await openLogs(other.url, jobId, a.token);
      await waitFor(() => messagesOf(c).length === 1, { what: 'the first line' });
      const started = Date.now();
      await other.close();
      assert.ok(Date.now() - started < 3000, `the API closed in ${Date.now() - started} ms`);
      await c.closed;
      assert.equal(endOf(c), undefined, 'cut, not ended');

      await writeBatch(batcher, 'after the restart');
      const resumed = await open(jobId, a.token, { 'last-event-id': c.events.at(-1)!.id });
      await batcher.close();
      await resumed.closed;
      assert.deepEqual(messagesOf(resumed), ['after the restart']);
    } finally {
      await other.close();
      redis.disconnect();
    }
  });
});

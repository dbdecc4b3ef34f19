/**
 * The client the CLI, `sri demo` and the tests share tries again what another try can fix, and never what could do
 * the same thing twice. A local HTTP server answers as a loaded or restarting API does.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiClient } from '../../src/cli/api-client.ts';
import { isSriError } from '../../src/shared/errors.ts';

interface Seen { method: string; url: string; key: string | undefined }

describe('ApiClient retries', () => {
  let server: Server;
  let base: string;
  const seen: Seen[] = [];
  /** What the server does with the next requests, in order; afterwards it answers 200 {ok:true}. */
  let script: Array<'503' | '429' | 'reset' | '400'> = [];
  before(async () => {
    server = createServer((req: IncomingMessage, res) => {
      seen.push({ method: req.method!, url: req.url!, key: req.headers['idempotency-key'] as string | undefined });
      req.resume();
      const next = script.shift();
      if (next === 'reset') { req.socket.destroy(); return; }
      const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
      };
      if (next === '503') return json(503, { error: { code: 'SERVICE_UNAVAILABLE', message: 'Redis unreachable' } });
      if (next === '429') return json(429, { error: { code: 'RATE_LIMITED', message: 'slow down' } }, { 'retry-after': '1' });
      if (next === '400') return json(400, { error: { code: 'VALIDATION_FAILED', message: 'bad' } });
      return json(200, { ok: true });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));
  const reset = (s: typeof script) => { script = s; seen.length = 0; };

  it('tries a GET again after 503s and a lost connection, then returns the answer', async () => {
    reset(['503', 'reset', '503']);
    const r = await new ApiClient(base).request<{ ok: boolean }>('GET', '/api/jobs');
    assert.deepEqual(r.body, { ok: true });
    assert.equal(seen.length, 4);
  });

  it('honours Retry-After on 429', async () => {
    reset(['429']);
    const started = Date.now();
    await new ApiClient(base).request('GET', '/api/jobs');
    assert.ok(Date.now() - started >= 900, 'waited about the second the server asked for');
    assert.equal(seen.length, 2);
  });

  it('sends POST /api/run with an idempotency key, the same one after a lost answer and a new one after a 503', async () => {
    reset(['reset', '503']);
    await new ApiClient(base).request('POST', '/api/run', { providerId: 'demo' });
    assert.equal(seen.length, 3);
    const [first, second, third] = seen.map((s) => s.key);
    assert.ok(first, 'a key was sent');
    assert.equal(second, first, 'the request whose answer was lost is sent again under the same key, so it cannot run twice');
    assert.notEqual(third, second, 'a 503 means nothing was queued: the next try is a new run');
  });

  it('does not send a POST without an idempotency key again when its answer was lost', async () => {
    reset(['reset']);
    await assert.rejects(new ApiClient(base).request('POST', '/api/auth/register', { email: 'x' }),
      (e: unknown) => isSriError(e) && e.code === 'SERVICE_UNAVAILABLE');
    assert.equal(seen.length, 1);
  });

  it('does not retry a request error, and gives up after its deadline', async () => {
    reset(['400']);
    await assert.rejects(new ApiClient(base).request('GET', '/x'), (e: unknown) => isSriError(e) && e.code === 'VALIDATION_FAILED');
    assert.equal(seen.length, 1);
    reset(Array(100).fill('503'));
    await assert.rejects(new ApiClient(base, { retryDeadlineMs: 1500 }).request('GET', '/x'), (e: unknown) => isSriError(e) && e.code === 'SERVICE_UNAVAILABLE');
    assert.ok(seen.length >= 2 && seen.length < 100, `tried again, then stopped (${seen.length} tries)`);
  });
});

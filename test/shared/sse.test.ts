import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatLogLine } from '../../src/shared/log-events.ts';
import { formatSseComment, formatSseEvent, SseParser } from '../../src/shared/sse.ts';

describe('Server-Sent Events encoder and parser', () => {
  it('round-trips events with multi-line data, ids and comments, however the text is split into chunks', () => {
    const text = formatSseComment('hello\nthere')
      + formatSseEvent({ event: 'line', data: '{"a":1}' })
      + formatSseEvent({ event: 'line', id: '5-0', data: 'two\nlines' })
      + formatSseEvent({ id: '6-0' })
      + formatSseEvent({ data: 'plain' })
      + formatSseEvent({ event: 'end', id: '7-1', data: '{}' });
    const expected = [
      { event: 'line', data: '{"a":1}', id: '' },
      { event: 'line', data: 'two\nlines', id: '5-0' },
      { event: 'message', data: 'plain', id: '6-0' },
      { event: 'end', data: '{}', id: '7-1' },
    ];
    for (const size of [1, 2, 3, 7, text.length]) {
      const p = new SseParser();
      const events = [];
      for (let i = 0; i < text.length; i += size) events.push(...p.feed(text.slice(i, i + size)));
      assert.deepEqual(events, expected, `chunks of ${size}`);
      assert.equal(p.lastEventId, '7-1');
    }
  });

  it('accepts CR and CRLF line ends (also split between chunks), fields without a space, and ignores unknown fields and NUL ids', () => {
    const p = new SseParser();
    const events = [
      ...p.feed('event:line\r'), ...p.feed('\ndata:x\r\n'), ...p.feed('retry: 10\rfoo: bar\r'), ...p.feed('\r'),
      ...p.feed('id: bad\0id\ndata\n\n'),
    ];
    assert.deepEqual(events, [{ event: 'line', data: 'x', id: '' }, { event: 'message', data: '', id: '' }]);
  });

  it('refuses an event name or id that would break the framing', () => {
    assert.throws(() => formatSseEvent({ event: 'a\nb', data: '' }), /one line/);
    assert.throws(() => formatSseEvent({ id: 'a\rb', data: '' }), /one line/);
  });

  it('formats a log line as ISO-time LEVEL stream message', () => {
    assert.equal(formatLogLine({ ts: Date.UTC(2026, 0, 5, 10, 0, 0, 123), level: 'warn', stream: 'console', message: 'careful' }),
      '2026-01-05T10:00:00.123Z WARN console careful');
    assert.equal(formatLogLine({ ts: Number.NaN, level: 'info', stream: 'script', message: 'm' }), 'NaN INFO script m');
  });
});

/**
 * The CLI's progress output (src/cli/progress.ts) on streams that are not terminals, and `--json`'s silence. The
 * spinner on a real terminal is tested through a pseudo-terminal in demo.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createProgress, isInteractive } from '../../src/cli/progress.ts';

const ANSI = /\u001b\[/;

function stream(isTTY: boolean): { s: NodeJS.WriteStream; text(): string } {
  let text = '';
  const w = new Writable({ write(chunk: Buffer, _enc, cb) { text += chunk.toString(); cb(); } }) as unknown as NodeJS.WriteStream;
  Object.assign(w, { isTTY, columns: 80 });
  return { s: w, text: () => text };
}

describe('CLI progress', () => {
  it('prints plain lines when stdout is not a terminal: each waiting text once, when it changes', () => {
    const out = stream(false);
    const p = createProgress({ stream: out.s, env: {} });
    p.line('1. registered');
    for (const status of ['queued', 'queued', 'queued', 'running', 'running', 'done']) p.waiting(`job j1: ${status}`);
    p.stop();
    p.line('2. finished');
    assert.equal(out.text(), '1. registered\n   job j1: queued\n   job j1: running\n   job j1: done\n2. finished\n');
    assert.doesNotMatch(out.text(), ANSI);
  });

  it('prints nothing at all in --json mode, even on a terminal', () => {
    for (const isTTY of [false, true]) {
      const out = stream(isTTY);
      const p = createProgress({ stream: out.s, json: true, env: {} });
      p.line('1. registered');
      p.waiting('job j1: queued');
      p.stop();
      assert.equal(out.text(), '', `isTTY ${isTTY}`);
    }
  });

  it('draws a spinner only on a terminal that can take one: not for TERM=dumb, a width of 0, nor under CI', () => {
    assert.equal(isInteractive(stream(true).s, {}), true);
    assert.equal(isInteractive(stream(false).s, {}), false);
    assert.equal(isInteractive(stream(true).s, { TERM: 'dumb' }), false);
    assert.equal(isInteractive(stream(true).s, { CI: 'true' }), false);
    const unsized = stream(true);
    Object.assign(unsized.s, { columns: 0 });
    assert.equal(isInteractive(unsized.s, {}), false, 'a terminal nobody gave a width');
    // Under CI a terminal gets the plain lines.
    const out = stream(true);
    const p = createProgress({ stream: out.s, env: { CI: '1' } });
    p.waiting('job j1: queued');
    p.stop();
    assert.equal(out.text(), '   job j1: queued\n');
  });
});

/**
 * Server-Sent Events, both ends: the encoder the control plane writes live job logs with, and the incremental
 * parser `sri logs --follow` (and the tests) read them with. It follows the WHATWG "event stream" rules a browser's
 * EventSource applies, so what passes here passes there:
 *   - lines end with LF, CR or CRLF; a blank line dispatches the event; `:` starts a comment (heartbeats);
 *   - `data` lines join with LF; an event without data is not dispatched, but its `id` still becomes the last
 *     event id (the server uses such blocks to move a client's resume point past entries that carry no event);
 *   - an `id` containing NUL is ignored.
 */

export interface SseEvent {
  /** `message` when the block named none. */
  event: string;
  data: string;
  /** The last event id after this event (what a reconnecting client sends as `Last-Event-ID`). */
  id: string;
}

/** One event block. `data` may hold newlines (each becomes a `data:` line); `event` and `id` must not. */
export function formatSseEvent(e: { event?: string; id?: string; data?: string }): string {
  let out = '';
  if (e.id !== undefined) out += `id: ${oneLine('id', e.id)}\n`;
  if (e.event !== undefined) out += `event: ${oneLine('event', e.event)}\n`;
  if (e.data !== undefined) for (const line of e.data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return `${out}\n`;
}

/** A comment block: ignored by clients, it keeps proxies and the client's idle timer from closing the stream. */
export function formatSseComment(text: string): string {
  return `: ${text.replace(/[\r\n]+/g, ' ')}\n\n`;
}

function oneLine(field: string, value: string): string {
  if (/[\r\n]/.test(value)) throw new Error(`SSE ${field} must be one line`);
  return value;
}

/** Turns chunks of an event stream into events. Feed it decoded text in order; it keeps partial lines between chunks. */
export class SseParser {
  /** The last event id seen so far (also after id-only blocks). */
  lastEventId = '';
  private buffer = '';
  private event = '';
  private data: string[] = [];
  private idBuffer = '';
  /** The previous chunk ended with CR, so an LF at the start of the next one belongs to it. */
  private pendingCr = false;

  feed(chunk: string): SseEvent[] {
    const out: SseEvent[] = [];
    let text = chunk;
    if (this.pendingCr && text.startsWith('\n')) text = text.slice(1);
    this.pendingCr = false;
    this.buffer += text;
    const re = /\r\n|\r|\n/g;
    let start = 0;
    for (let m = re.exec(this.buffer); m; m = re.exec(this.buffer)) {
      // A CR at the very end may be the first half of a CRLF split across chunks.
      if (m[0] === '\r' && m.index === this.buffer.length - 1) this.pendingCr = true;
      this.line(this.buffer.slice(start, m.index), out);
      start = m.index + m[0].length;
    }
    this.buffer = this.buffer.slice(start);
    return out;
  }

  private line(line: string, out: SseEvent[]): void {
    if (line === '') {
      this.lastEventId = this.idBuffer;
      if (this.data.length > 0) out.push({ event: this.event || 'message', data: this.data.join('\n'), id: this.lastEventId });
      this.event = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) this.idBuffer = value;
  }
}

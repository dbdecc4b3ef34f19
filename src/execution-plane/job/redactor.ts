/**
 * Replaces secret values (cookie values, credentials, tenant secrets, the worker's own keys) by `[redacted]` in the
 * text the platform writes about a job: log lines, the live log, error messages, execution.log. Evidence from the
 * portal is not rewritten: downloads and screenshots are stored as served, and parsed data is redacted value by value
 * (`SecretValues`, below) — never by searching its serialised text, where a cookie `true` would turn `"success":true`
 * into invalid JSON and a locale cookie `es-EC` would cut the locale out of the data the page showed.
 *
 * Each value is searched in the forms it takes when it passes through common encodings (`secretForms`): as it is;
 * JSON-escaped (also ASCII-only, with `\/`, and escaped twice); URL-encoded (encodeURIComponent, lower-case hex,
 * form encoding, encodeURI); HTML-escaped; lower-case hex of its UTF-8 bytes; base64 and base64url at the three
 * byte alignments it can have inside a longer text (so it is found in base64("user:" + password)); and each line of
 * a multi-line value. Values shorter than MIN_SECRET_LENGTH are not searched: a cookie `lang=en` would otherwise
 * garble every line containing "en", and such values hide nothing.
 *
 * A value split over several log lines: `LineRedactor` (the live log, one line at a time) remembers the raw tail of
 * the lines before, per stream and across streams, so it redacts the part of a line that completes a value started
 * in earlier lines, and a line ending that is the start (MIN_SECRET_LENGTH characters or more) of a value. It cannot
 * take back a line already sent: the first MIN_SECRET_LENGTH - 1 characters of a split value can reach the live log.
 * `redactSequence` (execution.log, written once at the end) sees every line and redacts all the pieces.
 * What no redaction can catch (docs/security.md): a value transformed otherwise (reversed, spaced out, encrypted),
 * pieces interleaved with other output in more than one stream, or pixels in a screenshot.
 */
export const REDACTED = '[redacted]';
export const MIN_SECRET_LENGTH = 4;

export type Range = [start: number, end: number];

/** Base64 (and base64url) of `bytes` where they sit at byte offset 0, 1 or 2 of a 3-byte group, cut to the
 * characters that depend on `bytes` alone. */
function base64Forms(bytes: Buffer): string[] {
  const out: string[] = [];
  for (let k = 0; k < 3; k++) {
    const enc = Buffer.concat([Buffer.alloc(k), bytes]).toString('base64');
    // Character i of the encoding covers bits [6i, 6i + 6); the value's bits are [8k, 8k + 8n).
    const frag = enc.slice(Math.ceil((8 * k) / 6), Math.floor((8 * k + 8 * bytes.length) / 6));
    out.push(frag, frag.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return out;
}

const htmlEscape = (v: string) => v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
const asciiJson = (json: string) => json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** Every form of `value` searched for, each MIN_SECRET_LENGTH characters or longer. */
export function secretForms(value: string): string[] {
  const out = new Set<string>();
  const add = (form: string) => { if (form.length >= MIN_SECRET_LENGTH) out.add(form); };
  const lines = value.split(/\r\n|\r|\n/);
  for (const v of lines.length > 1 ? [value, ...lines] : [value]) {
    if (v.length < MIN_SECRET_LENGTH) continue;
    add(v);
    const json = JSON.stringify(v).slice(1, -1);
    add(json);
    add(json.replace(/\//g, '\\/'));
    add(asciiJson(json));
    add(JSON.stringify(json).slice(1, -1));
    try {
      const uri = encodeURIComponent(v);
      add(uri);
      add(uri.replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase()));
      add(encodeURI(v));
    } catch {
      // A lone surrogate cannot be URL-encoded, so it cannot appear URL-encoded either.
    }
    add(new URLSearchParams({ v }).toString().slice(2));
    add(htmlEscape(v));
    const bytes = Buffer.from(v, 'utf8');
    add(bytes.toString('hex'));
    for (const b of base64Forms(bytes)) add(b);
  }
  return [...out];
}

function mergeRanges(ranges: Range[]): Range[] {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: Range[] = [];
  for (const [s, e] of sorted) {
    const last = out[out.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/** `text` with each of `ranges` (merged) replaced by REDACTED. */
export function render(text: string, ranges: Range[]): string {
  if (!ranges.length) return text;
  let out = '';
  let at = 0;
  for (const [s, e] of mergeRanges(ranges)) {
    out += text.slice(at, s) + REDACTED;
    at = e;
  }
  return out + text.slice(at);
}

export class Redactor {
  /** Every form of every value, longest first. */
  private forms: string[] = [];
  private readonly values = new Set<string>();
  private longest = 0;

  constructor(initial: Iterable<string> = []) {
    this.add(initial);
  }

  add(values: Iterable<string>): void {
    const next = new Set(this.forms);
    for (const v of values) {
      if (typeof v !== 'string' || v.length < MIN_SECRET_LENGTH || this.values.has(v)) continue;
      this.values.add(v);
      for (const f of secretForms(v)) next.add(f);
    }
    this.forms = [...next].sort((a, b) => b.length - a.length);
    this.longest = this.forms[0]?.length ?? 0;
  }

  /** The length of the longest form (what a line redactor keeps of the lines before). */
  get maxFormLength(): number {
    return this.longest;
  }

  /** Ranges of `text` covered by a form of a value. */
  ranges(text: string): Range[] {
    const out: Range[] = [];
    for (const f of this.forms) {
      if (f.length > text.length) continue;
      for (let i = text.indexOf(f); i >= 0; i = text.indexOf(f, i + 1)) out.push([i, i + f.length]);
    }
    return out;
  }

  redact(text: string): string {
    return render(text, this.ranges(text));
  }

  /**
   * Ranges of `line` that belong to a value begun in `before` (the raw text of the lines before it): a form that
   * starts in `before` and ends in `line`, or a line ending that is the start of a form (MIN_SECRET_LENGTH
   * characters or more of it).
   */
  continuationRanges(before: string, line: string): Range[] {
    const out: Range[] = [];
    const window = before + line;
    const cut = before.length;
    for (const f of this.forms) {
      // A whole form across the boundary.
      if (cut > 0) {
        for (let i = window.indexOf(f, Math.max(0, cut - f.length + 1)); i >= 0 && i < cut; i = window.indexOf(f, i + 1)) {
          if (i + f.length > cut) out.push([0, i + f.length - cut]);
        }
      }
      // The window ends with the start of a form.
      if (f.length <= MIN_SECRET_LENGTH) continue;
      const seed = f.slice(0, MIN_SECRET_LENGTH);
      for (let i = window.indexOf(seed, Math.max(0, window.length - f.length + 1)); i >= 0; i = window.indexOf(seed, i + 1)) {
        if (window.length - i < f.length && f.startsWith(window.slice(i)) && window.length > cut) {
          out.push([Math.max(0, i - cut), line.length]);
          break;
        }
      }
    }
    return out;
  }
}

/**
 * Redacts a log one line at a time (the live log): each line on its own, plus the parts that continue a value from
 * earlier lines of the same stream or of the log as a whole (see the file comment for what it cannot catch).
 */
export class LineRedactor {
  private readonly tails = new Map<string, string>();

  constructor(private readonly redactor: Redactor) {}

  /** Ranges to redact in `line` (of `stream`), given the lines before it. Remembers the line. */
  ranges(stream: string, line: string): Range[] {
    const out = this.redactor.ranges(line);
    const keep = Math.max(0, this.redactor.maxFormLength - 1);
    for (const key of ['*', stream]) {
      const before = this.tails.get(key) ?? '';
      out.push(...this.redactor.continuationRanges(before, line));
      this.tails.set(key, keep ? (before + line).slice(-keep) : '');
    }
    return mergeRanges(out);
  }

  line(stream: string, line: string): string {
    return render(line, this.ranges(stream, line));
  }
}

/**
 * Redacts a whole log at once: the forms found in each line, in the concatenation of all lines, and in the
 * concatenation of each stream's lines (a value split across lines, however many pieces), plus `extra` ranges per
 * line (what the live log already hid). Returns the redacted lines.
 */
export function redactSequence(redactor: Redactor, lines: ReadonlyArray<{ stream: string; text: string; extra?: Range[] }>): string[] {
  const ranges: Range[][] = lines.map((l) => [...(l.extra ?? [])]);
  const scan = (indexes: number[]) => {
    const starts: number[] = [];
    let joined = '';
    for (const i of indexes) {
      starts.push(joined.length);
      joined += lines[i]!.text;
    }
    for (const [s, e] of redactor.ranges(joined)) {
      // Map the range back onto every line it covers, from the last line starting at or before s.
      let lo = 0;
      let hi = starts.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (starts[mid]! <= s) lo = mid;
        else hi = mid - 1;
      }
      for (let k = lo; k < indexes.length && starts[k]! < e; k++) {
        const ls = starts[k]!;
        const le = ls + lines[indexes[k]!]!.text.length;
        if (s < le) ranges[indexes[k]!]!.push([Math.max(s, ls) - ls, Math.min(e, le) - ls]);
      }
    }
  };
  scan(lines.map((_, i) => i));
  const byStream = new Map<string, number[]>();
  lines.forEach((l, i) => {
    const list = byStream.get(l.stream);
    if (list) list.push(i);
    else byStream.set(l.stream, [i]);
  });
  for (const idx of byStream.values()) if (idx.length > 1 && idx.length < lines.length) scan(idx);
  return lines.map((l, i) => render(l.text, ranges[i]!));
}

/**
 * Parsed data (what the script read from the portal, `helpers.setResult`) is redacted value by value: a string — a
 * value or an object key — is replaced by REDACTED only when it *is* one of the values given here (as it is,
 * trimmed, or in one of the encoded forms of `secretForms`). A string that merely contains a secret, and values equal
 * to session metadata the page shows (a locale cookie), are left as the portal showed them.
 */
export class SecretValues {
  private readonly forms = new Set<string>();

  constructor(initial: Iterable<string> = []) {
    this.add(initial);
  }

  add(values: Iterable<string>): void {
    for (const value of values) {
      if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH) continue;
      // A multi-line value also as a form submits it (a textarea sends CRLF) and as HTML shows it (LF).
      const variants = /[\r\n]/.test(value) ? new Set([value, value.replace(/\r\n?|\n/g, '\r\n'), value.replace(/\r\n?/g, '\n')]) : [value];
      for (const v of variants) {
        for (const f of secretForms(v)) this.forms.add(f);
        // secretForms has base64 cut to the characters that depend on the value alone (for searching inside longer
        // text); a whole value is the value's own base64, padded or not.
        const b64 = Buffer.from(v, 'utf8').toString('base64');
        for (const f of [b64, b64.replace(/=+$/, ''), Buffer.from(v, 'utf8').toString('base64url')]) this.forms.add(f);
      }
    }
  }

  /** Whether `s` is a secret value (not: contains one). */
  has(s: string): boolean {
    return this.forms.has(s) || this.forms.has(s.trim());
  }

  /**
   * `data` as JSON with every secret value and key replaced. Through JSON.stringify's replacer — one pass, the
   * engine's own recursion — so the text is never parsed again and data as deep as JSON allows is handled.
   */
  stringify(data: unknown, space?: number): string {
    return JSON.stringify(data, (_key, v: unknown) => {
      if (typeof v === 'string') return this.has(v) ? REDACTED : v;
      if (v === null || typeof v !== 'object' || Array.isArray(v) || !Object.keys(v).some((k) => this.has(k))) return v;
      const copy: Record<string, unknown> = {};
      // Defined, not assigned: a "__proto__" key stays data.
      for (const [k, x] of Object.entries(v)) Object.defineProperty(copy, this.has(k) ? REDACTED : k, { value: x, enumerable: true, writable: true, configurable: true });
      return copy;
    }, space);
  }
}

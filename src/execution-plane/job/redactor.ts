/**
 * Replaces secret values (cookie values, credentials, the signing secret) by `[redacted]` in any text that leaves
 * the job: log lines, error messages, execution.log, parsed data. Values shorter than MIN_SECRET_LENGTH are not
 * replaced: a cookie `lang=en` would otherwise garble every line containing "en", and such values hide nothing.
 */
export const REDACTED = '[redacted]';
export const MIN_SECRET_LENGTH = 4;

export class Redactor {
  private secrets: string[] = [];

  constructor(initial: Iterable<string> = []) {
    this.add(initial);
  }

  add(values: Iterable<string>): void {
    const next = new Set(this.secrets);
    for (const v of values) {
      if (typeof v !== 'string' || v.length < MIN_SECRET_LENGTH) continue;
      next.add(v);
      // The same value as it appears inside JSON text (quotes, backslashes, control characters escaped).
      const inJson = JSON.stringify(v).slice(1, -1);
      if (inJson !== v) next.add(inJson);
      // And URL-encoded, as it appears in a logged URL or a cookie header.
      const inUrl = encodeURIComponent(v);
      if (inUrl !== v) next.add(inUrl);
    }
    // Longest first, so a secret containing another is replaced whole.
    this.secrets = [...next].sort((a, b) => b.length - a.length);
  }

  redact(text: string): string {
    let out = text;
    for (const s of this.secrets) if (out.includes(s)) out = out.split(s).join(REDACTED);
    return out;
  }
}

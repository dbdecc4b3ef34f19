/**
 * The allowedHosts rule as the API applies it (src/shared/host-match.ts: `host`, `host:port`, `*.domain`; a URL
 * without a port is on its scheme's default port), for flagging a URL before the flow is saved. The API stays the
 * judge: this only warns early. The browser's URL parser gives the canonical host, as the API's does.
 */
const DEFAULT_PORTS: Readonly<Record<string, string>> = { 'http:': '80', 'https:': '443' };

export type UrlCheck = { ok: true } | { ok: false; reason: 'not-a-url' } | { ok: false; reason: 'host'; host: string };

export function checkUrlAgainstHosts(raw: string, allowedHosts: readonly string[]): UrlCheck {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, reason: 'not-a-url' };
  }
  const port = DEFAULT_PORTS[url.protocol];
  if (port === undefined) return { ok: false, reason: 'not-a-url' };
  const host = url.hostname.toLowerCase();
  const actualPort = url.port || port;
  const allowed = allowedHosts.some((entry) => {
    const m = /^(.*?)(?::(\d{1,5}))?$/.exec(entry.trim().toLowerCase());
    if (!m) return false;
    if (m[2] !== undefined && String(Number(m[2])) !== actualPort) return false;
    const pattern = m[1]!;
    if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1)) && !/^[\d.]+$/.test(host);
    let canonical = pattern;
    try {
      canonical = new URL(`http://${pattern}/`).hostname;
    } catch {
      return false;
    }
    return canonical === host;
  });
  return allowed ? { ok: true } : { ok: false, reason: 'host', host: url.host };
}

/**
 * Keeps a job's browser context on its allowed hosts (ARCHITECTURE.md invariant 5), first line: every request of
 * the context goes through one route handler; requests to other hosts are aborted and counted. Schemes other than
 * http(s)/ws(s)/data/blob — file: above all — are always blocked, with or without allowedHosts: a script must not
 * read the worker's files through the browser. Playwright does not route the redirects of a navigation, so the
 * egress proxy (egress-proxy.ts) is the second line that also catches those.
 */
import type { BrowserContext } from 'playwright-core';

/**
 * `pattern` is a host name (any port), `host:port` (that port only) or `*.domain` (any subdomain of domain, not
 * domain itself). Matching is case-insensitive.
 */
export function hostMatches(hostname: string, port: string, pattern: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  let p = pattern.toLowerCase();
  const portMatch = /^(.*):(\d{1,5})$/.exec(p);
  if (portMatch && !p.startsWith('[')) {
    if (portMatch[2] !== port) return false;
    p = portMatch[1]!;
  }
  if (p.startsWith('*.')) return host.endsWith(p.slice(1)) && host.length > p.length - 1;
  return host === p;
}

export function urlAllowed(url: string, allowedHosts: readonly string[] | undefined): { allowed: boolean; host: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { allowed: false, host: '(unparseable url)' };
  }
  if (u.protocol === 'data:' || u.protocol === 'blob:' || url === 'about:blank') return { allowed: true, host: '' };
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol)) return { allowed: false, host: `${u.protocol}//` };
  if (!allowedHosts) return { allowed: true, host: u.hostname };
  const port = u.port || (u.protocol === 'https:' || u.protocol === 'wss:' ? '443' : '80');
  return { allowed: allowedHosts.some((p) => hostMatches(u.hostname, port, p)), host: u.hostname };
}

export async function installHostGuard(context: BrowserContext, allowedHosts: readonly string[] | undefined, onBlocked: (host: string) => void): Promise<void> {
  await context.route(() => true, async (route) => {
    const verdict = urlAllowed(route.request().url(), allowedHosts);
    if (verdict.allowed) {
      await route.fallback();
    } else {
      onBlocked(verdict.host);
      await route.abort('blockedbyclient');
    }
  });
  await context.routeWebSocket(() => true, (ws) => {
    const verdict = urlAllowed(ws.url(), allowedHosts);
    if (verdict.allowed) {
      ws.connectToServer();
    } else {
      onBlocked(verdict.host);
      void ws.close({ code: 1008, reason: 'host not allowed' });
    }
  });
}

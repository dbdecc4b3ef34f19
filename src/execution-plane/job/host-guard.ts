/**
 * Keeps a job's browser context on its allowed hosts (ARCHITECTURE.md invariant 5), first line: every request of
 * the context goes through one route handler; requests to other hosts are aborted and counted. Schemes other than
 * http(s)/ws(s)/data/blob — file: above all — are always blocked, with or without allowedHosts: a script must not
 * read the worker's files through the browser. It decides by host name only, and sees neither the redirects of a
 * navigation nor the requests of workers: the egress proxy (egress-proxy.ts), which every job's context goes
 * through, is the line that holds — it also checks where each host resolves to.
 */
import type { BrowserContext } from 'playwright-core';
import { canonicalHost, parsePattern, patternMatches, type EgressBlockReason } from './egress-policy.ts';

/**
 * `pattern` is a host name (any port), `host:port` (that port only) or `*.domain` (any subdomain of domain, not
 * domain itself). Both sides are compared in their URL form (egress-policy.ts canonicalHost): case, IPv4
 * spellings (`2130706433`, `0x7f.1`) and a trailing dot make no difference; an IP address never matches `*.`.
 */
export function hostMatches(hostname: string, port: string, pattern: string): boolean {
  const p = parsePattern(pattern);
  const host = canonicalHost(hostname.replace(/^\[(.*)\]$/, '$1'));
  return p !== undefined && host !== undefined && patternMatches(p, host, port);
}

export function urlAllowed(url: string, allowedHosts: readonly string[] | undefined): { allowed: boolean; host: string; reason?: EgressBlockReason } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { allowed: false, host: '(unparseable url)', reason: 'scheme' };
  }
  if (u.protocol === 'data:' || u.protocol === 'blob:' || url === 'about:blank') return { allowed: true, host: '' };
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol)) return { allowed: false, host: `${u.protocol}//`, reason: 'scheme' };
  if (!allowedHosts) return { allowed: true, host: u.hostname };
  const port = u.port || (u.protocol === 'https:' || u.protocol === 'wss:' ? '443' : '80');
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  return allowedHosts.some((p) => hostMatches(host, port, p)) ? { allowed: true, host } : { allowed: false, host, reason: 'not-allowed' };
}

export async function installHostGuard(
  context: BrowserContext, allowedHosts: readonly string[] | undefined, onBlocked: (host: string, reason: EgressBlockReason) => void,
): Promise<void> {
  await context.route(() => true, async (route) => {
    const verdict = urlAllowed(route.request().url(), allowedHosts);
    if (verdict.allowed) {
      await route.fallback();
    } else {
      onBlocked(verdict.host, verdict.reason ?? 'not-allowed');
      await route.abort('blockedbyclient');
    }
  });
  await context.routeWebSocket(() => true, (ws) => {
    const verdict = urlAllowed(ws.url(), allowedHosts);
    if (verdict.allowed) {
      ws.connectToServer();
    } else {
      onBlocked(verdict.host, verdict.reason ?? 'not-allowed');
      void ws.close({ code: 1008, reason: 'host not allowed' });
    }
  });
}

/**
 * Keeps a job's browser context on its allowed hosts (ARCHITECTURE.md invariant 5), first line: every request of
 * the context goes through one route handler; requests to other hosts are aborted and counted. Schemes other than
 * http(s)/ws(s)/data/blob — file: above all — are always blocked, whatever the job's hosts: a script must not
 * read the worker's files through the browser. It decides by host name only, and sees neither the redirects of a
 * navigation nor the requests of workers: the egress proxy (egress-proxy.ts), which every job's context goes
 * through, is the line that holds — it also checks where each host resolves to.
 */
import type { BrowserContext } from 'playwright-core';
import { hostAndPort, parsePattern, patternMatches } from '../../shared/host-match.ts';
import { canonicalHost, EgressPolicy, type EgressBlockReason } from './egress-policy.ts';

/**
 * `pattern` is a host name (any port), `host:port` (that port only) or `*.domain` (any subdomain of domain, not
 * domain itself), matched by the rule of src/shared/host-match.ts — the flow compiler's too. Both sides are compared
 * in their URL form: case, IPv4 spellings (`2130706433`, `0x7f.1`) and a trailing dot make no difference; an IP
 * address never matches `*.`.
 */
export function hostMatches(hostname: string, port: string, pattern: string): boolean {
  const p = parsePattern(pattern);
  const host = canonicalHost(hostname.replace(/^\[(.*)\]$/, '$1'));
  return p !== undefined && host !== undefined && patternMatches(p, host, port);
}

/** The guard's verdict on one URL under the job's egress policy (the proxy's host check, by name only). */
export function urlAllowed(url: string, policy: EgressPolicy): { allowed: boolean; host: string; reason?: EgressBlockReason } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return { allowed: false, host: '(unparseable url)', reason: 'scheme' };
  }
  if (u.protocol === 'data:' || u.protocol === 'blob:' || url === 'about:blank') return { allowed: true, host: '' };
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol)) return { allowed: false, host: `${u.protocol}//`, reason: 'scheme' };
  const target = hostAndPort(u);
  const host = target?.host ?? u.hostname.replace(/^\[(.*)\]$/, '$1');
  return target !== undefined && policy.match(target.host, target.port).length > 0
    ? { allowed: true, host } : { allowed: false, host, reason: 'not-allowed' };
}

export async function installHostGuard(
  context: BrowserContext, policy: EgressPolicy, onBlocked: (host: string, reason: EgressBlockReason) => void,
): Promise<void> {
  const rules = new GuardRules();
  rules.set(policy, onBlocked);
  await installGuard(context, rules);
}

/**
 * The rules of a guard installed before its job is known (a context prepared ahead, browser.ts): nothing passes,
 * and nothing is reported, until `set` gives it the job's policy — once.
 */
export class GuardRules {
  policy: EgressPolicy = new EgressPolicy([]);
  onBlocked: (host: string, reason: EgressBlockReason) => void = () => {};
  private given = false;

  set(policy: EgressPolicy, onBlocked: (host: string, reason: EgressBlockReason) => void): void {
    if (this.given) throw new Error('a host guard\'s rules are set once');
    this.given = true;
    this.policy = policy;
    this.onBlocked = onBlocked;
  }
}

/** Installs the guard on `context` under `rules`, read at each request (so rules set later apply from then on). */
export async function installGuard(context: BrowserContext, rules: GuardRules): Promise<void> {
  await context.route(() => true, async (route) => {
    const verdict = urlAllowed(route.request().url(), rules.policy);
    if (verdict.allowed) {
      await route.fallback();
    } else {
      rules.onBlocked(verdict.host, verdict.reason ?? 'not-allowed');
      await route.abort('blockedbyclient');
    }
  });
  await context.routeWebSocket(() => true, (ws) => {
    const verdict = urlAllowed(ws.url(), rules.policy);
    if (verdict.allowed) {
      ws.connectToServer();
    } else {
      rules.onBlocked(verdict.host, verdict.reason ?? 'not-allowed');
      void ws.close({ code: 1008, reason: 'host not allowed' });
    }
  });
}

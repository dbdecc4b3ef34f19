/**
 * The one rule for `allowedHosts` entries, used by both planes: the flow compiler, which refuses a flow whose URLs
 * are not on its provider's hosts (src/control-plane/flows/compile.ts), and the worker's egress rules, which let the
 * job's browser reach those hosts and nothing else (src/execution-plane/job/egress-policy.ts, the route guard and
 * the egress proxy). One rule, so a flow that compiles is never refused when it runs, and nothing the worker
 * refuses compiles (test/shared/host-match.test.ts drives one table through both).
 *
 * - An entry is `host` (any port), `host:port` (that port only) or `*.domain` (any subdomain of domain, not domain
 *   itself). A URL without a port reaches its scheme's default port (http/ws 80, https/wss 443), so `portal.example:443`
 *   admits `https://portal.example/` and not `http://portal.example/`.
 * - Both sides are compared in their WHATWG URL form (the form Chromium sends, canonicalHost): case, a trailing dot
 *   and the spelling of an IPv4 address (`2130706433`, `0x7f.1`, `127.1`) make no difference; an IP address never
 *   matches `*.`; an IPv6 spelling of an IPv4 address is another host (address classes, not patterns, judge those).
 * - An entry that does not parse matches nothing (the job schema and the provider catalogue refuse such entries).
 */
import { isIP } from 'node:net';
import { canonicalHost } from './net/address-class.ts';

/** One allowedHosts entry, parsed. */
export interface HostPattern {
  /** The entry as written. */
  readonly text: string;
  /** Canonical host (canonicalHost); for a wildcard, the domain after `*.`. */
  readonly host: string;
  /** Decimal port without leading zeros, when the entry names one. */
  readonly port?: string;
  readonly wildcard: boolean;
  /** The entry names an IP address literally. */
  readonly ip: boolean;
}

export function parsePattern(text: string): HostPattern | undefined {
  const t = text.trim().toLowerCase();
  const m = isIP(t) === 6 ? [t, t] : /^(.*?)(?::(\d{1,5}))?$/.exec(t);
  if (!m) return undefined;
  const wildcard = m[1]!.startsWith('*.');
  const host = canonicalHost(wildcard ? m[1]!.slice(2) : m[1]!);
  if (host === undefined || host.includes('*')) return undefined;
  const ip = isIP(host) !== 0;
  if (wildcard && ip) return undefined;
  if (m[2] !== undefined && Number(m[2]) > 65535) return undefined;
  return { text, host, ...(m[2] !== undefined ? { port: String(Number(m[2])) } : {}), wildcard, ip };
}

/** The entries that parse; the others match nothing. */
export function parsePatterns(allowedHosts: readonly string[]): HostPattern[] {
  return allowedHosts.map(parsePattern).filter((p): p is HostPattern => p !== undefined);
}

/** `host` must be canonical (canonicalHost), `port` decimal; an IP address never matches a wildcard. */
export function patternMatches(p: HostPattern, host: string, port: string): boolean {
  if (p.port !== undefined && p.port !== port) return false;
  if (p.wildcard) return isIP(host) === 0 && host.endsWith(`.${p.host}`);
  return host === p.host;
}

const DEFAULT_PORTS: Readonly<Record<string, string>> = { 'http:': '80', 'ws:': '80', 'https:': '443', 'wss:': '443' };

/** The host and port an http(s)/ws(s) URL connects to (host canonical), or undefined for other schemes. */
export function hostAndPort(url: URL): { host: string; port: string } | undefined {
  const fallback = DEFAULT_PORTS[url.protocol];
  if (fallback === undefined) return undefined;
  const host = canonicalHost(url.hostname.replace(/^\[(.*)\]$/, '$1'));
  return host === undefined ? undefined : { host, port: url.port || fallback };
}

/** Whether an allowedHosts entry of `allowedHosts` lets an http(s)/ws(s) URL through. */
export function urlHostAllowed(url: URL, allowedHosts: readonly string[]): boolean {
  const target = hostAndPort(url);
  return target !== undefined && parsePatterns(allowedHosts).some((p) => patternMatches(p, target.host, target.port));
}

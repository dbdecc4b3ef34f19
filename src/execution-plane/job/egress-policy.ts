/**
 * What a job's browser may reach (ARCHITECTURE.md invariant 5), as pure functions shared by the egress proxy
 * (egress-proxy.ts) and the route guard (host-guard.ts), so both decide alike:
 * - host names and allowedHosts patterns are compared in their WHATWG URL form — the form Chromium sends — so
 *   `2130706433`, `0x7f.1`, `127.1`, `0177.0.0.1` and `%31%32%37.0.0.1` are all `127.0.0.1`, and
 *   `[0:0:0:0:0:ffff:7f00:1]` is `::ffff:7f00:1`: no spelling of an address gets past a pattern or a range check;
 * - every address a host resolves to is classified; a non-public one is reached only when a matching allowedHosts
 *   entry names it literally (or is `localhost`, for loopback addresses), link-local ones — the cloud metadata
 *   services — never. Without allowedHosts (jobs pushed by hand) only link-local and metadata addresses are refused.
 */
import { isIP } from 'node:net';

/** Where an address points; everything but `public` is refused unless allowedHosts names it (see refuseAddress). */
export type AddressClass =
  | 'public' | 'loopback' | 'private' | 'shared' | 'link-local' | 'metadata' | 'unspecified' | 'multicast' | 'reserved';

/** Why a request or connection was refused: the host is not allowed, its scheme is not, or where it resolves to. */
export type EgressBlockReason = 'not-allowed' | 'scheme' | 'proxy' | 'platform' | Exclude<AddressClass, 'public'>;

/** Cloud metadata endpoints outside 169.254.0.0/16 (which is link-local and always refused anyway). */
const METADATA = new Set(['fd00:ec2::254', '100.100.100.200']);

const V4_RANGES: readonly (readonly [string, number, AddressClass])[] = [
  ['0.0.0.0', 8, 'unspecified'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'shared'], // carrier-grade NAT
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'], // 169.254.169.254: AWS, GCP, Azure, OCI metadata
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved'],
  ['192.0.2.0', 24, 'reserved'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'reserved'],
  ['198.51.100.0', 24, 'reserved'],
  ['203.0.113.0', 24, 'reserved'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'], // and 255.255.255.255
];

function v4Number(address: string): number {
  return address.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

const V4_MASKS = V4_RANGES.map(([base, bits, cls]) => ({ base: v4Number(base), size: 2 ** (32 - bits), cls }));

function classifyV4(address: string): AddressClass {
  const n = v4Number(address);
  for (const r of V4_MASKS) if (n >= r.base && n < r.base + r.size) return r.cls;
  return 'public';
}

/** The 8 groups of an IPv6 address (valid per net.isIP; a zone `%eth0` is ignored). */
function v6Groups(address: string): number[] {
  let a = address.replace(/%.*$/, '');
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (dotted) {
    const [o1, o2, o3, o4] = dotted.slice(1).map(Number) as [number, number, number, number];
    a = `${a.slice(0, dotted.index)}${((o1 << 8) | o2).toString(16)}:${((o3 << 8) | o4).toString(16)}`;
  }
  const [head = '', tail] = a.split('::');
  const parse = (s: string) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const h = parse(head);
  const t = tail === undefined ? [] : parse(tail);
  return [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
}

const v4Of = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;

/** The IPv4 address an IPv6 address carries and reaches (mapped, NAT64, 6to4), if any. */
function embeddedV4(g: readonly number[]): string | undefined {
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 5) && g[5] === 0xffff) return v4Of(g[6]!, g[7]!); // ::ffff:a.b.c.d
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return v4Of(g[6]!, g[7]!); // NAT64 64:ff9b::/96
  if (g[0] === 0x2002) return v4Of(g[1]!, g[2]!); // 6to4
  return undefined;
}

function classifyV6(address: string): AddressClass {
  const g = v6Groups(address);
  const v4 = embeddedV4(g);
  if (v4 !== undefined) return classifyAddress(v4);
  const g0 = g[0]!;
  if (g.every((x) => x === 0)) return 'unspecified';
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return 'loopback';
  if (g.slice(0, 6).every((x) => x === 0)) return 'reserved'; // IPv4-compatible, deprecated
  if (g0 === 0x64 && g[1] === 0xff9b) return 'private'; // local-use NAT64 64:ff9b:1::/48
  if (g0 === 0x2001 && (g[1] === 0 || g[1] === 0xdb8)) return 'reserved'; // Teredo, documentation
  if (g0 === 0x100 && g[1] === 0 && g[2] === 0 && g[3] === 0) return 'reserved'; // discard-only
  if ((g0 & 0xfe00) === 0xfc00) return 'private'; // unique local fc00::/7
  if ((g0 & 0xffc0) === 0xfe80) return 'link-local';
  if ((g0 & 0xffc0) === 0xfec0) return 'private'; // site-local, deprecated
  if ((g0 & 0xff00) === 0xff00) return 'multicast';
  return 'public';
}

/** The kind of an IP address (either family, any IPv6 spelling). Not an IP address: 'reserved'. */
export function classifyAddress(address: string): AddressClass {
  const family = isIP(address.replace(/%.*$/, ''));
  if (family === 0) return 'reserved';
  if (METADATA.has(canonicalAddress(address))) return 'metadata';
  return family === 4 ? classifyV4(address) : classifyV6(address);
}

/** One spelling per address: IPv4 dotted, IPv4-mapped IPv6 as its IPv4, other IPv6 compressed, lower case. */
export function canonicalAddress(address: string): string {
  if (isIP(address) === 4) return address;
  const g = v6Groups(address);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return v4Of(g[6]!, g[7]!);
  return new URL(`http://[${g.map((x) => x.toString(16)).join(':')}]/`).hostname.slice(1, -1);
}

/**
 * A host as the WHATWG URL parser (and so Chromium) spells it: lower case, IPv4 in dotted decimal whatever its
 * spelling, IPv6 compressed without brackets, punycode, no trailing dot. Undefined when it is not a host.
 */
export function canonicalHost(raw: string): string | undefined {
  if (raw === '' || /[\s/?#@\\]/.test(raw)) return undefined;
  const bracketed = !raw.startsWith('[') && isIP(raw) === 6 ? `[${raw}]` : raw;
  let host: string;
  try {
    host = new URL(`http://${bracketed}/`).hostname;
  } catch {
    return undefined;
  }
  if (host.startsWith('[')) return host.slice(1, -1);
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

/** One allowedHosts entry: `host`, `host:port`, `*.domain` (subdomains of domain, not domain itself). */
export interface HostPattern {
  readonly text: string;
  readonly host: string;
  readonly port?: string;
  readonly wildcard: boolean;
  /** The pattern names an IP address literally. */
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
  return { text, host, ...(m[2] !== undefined ? { port: String(Number(m[2])) } : {}), wildcard, ip };
}

/** `host` must be canonical (canonicalHost); an IP address never matches a wildcard. */
export function patternMatches(p: HostPattern, host: string, port: string): boolean {
  if (p.port !== undefined && p.port !== port) return false;
  if (p.wildcard) return isIP(host) === 0 && host.endsWith(`.${p.host}`);
  return host === p.host;
}

/**
 * A job's egress rules: its allowedHosts, or none (`undefined`: any host, but never a link-local or metadata
 * address — the hand-pushed jobs of the README and of the tests reach the demo portal on 127.0.0.1 this way).
 */
export class EgressPolicy {
  private readonly patterns: readonly HostPattern[] | undefined;

  constructor(allowedHosts: readonly string[] | undefined) {
    // An entry that does not parse matches nothing (the job schema already refuses such entries).
    this.patterns = allowedHosts?.map(parsePattern).filter((p): p is HostPattern => p !== undefined);
  }

  get restricted(): boolean {
    return this.patterns !== undefined;
  }

  /** The patterns that let `host:port` through (`host` canonical); empty when none does. */
  match(host: string, port: string): readonly HostPattern[] {
    if (!this.patterns) return [{ text: '*', host: '', wildcard: true, ip: false }];
    return this.patterns.filter((p) => patternMatches(p, host, port));
  }

  /**
   * Why `host`, matched by `matched`, may not be reached at `address` — or undefined when it may. Link-local,
   * metadata, unspecified and multicast addresses are never reached; other non-public ones only when a matched
   * pattern names that address, or is `localhost` and the address is loopback.
   */
  refuseAddress(host: string, address: string, matched: readonly HostPattern[]): EgressBlockReason | undefined {
    const cls = classifyAddress(address);
    if (cls === 'public') return undefined;
    if (cls === 'link-local' || cls === 'metadata' || cls === 'unspecified' || cls === 'multicast') return cls;
    if (!this.patterns) return undefined;
    const named = canonicalAddress(address);
    const exempt = matched.some((p) => !p.wildcard && (
      (p.ip && canonicalAddress(p.host) === named) || (p.host === 'localhost' && host === 'localhost' && cls === 'loopback')));
    return exempt ? undefined : cls;
  }
}

/**
 * Where an IP address points, for every component that connects somewhere on a tenant's say: the egress proxy of a
 * job's browser (src/execution-plane/job/egress-policy.ts) and webhook deliveries (src/control-plane/webhooks).
 * One classifier, so that "public" means the same everywhere (ARCHITECTURE.md invariants 5 and 9).
 *
 * What must hold:
 *   - every spelling of an address gets the class of the address: hosts are read in their WHATWG URL form (the form
 *     Chromium and node's http client connect to), so `2130706433`, `0x7f.1`, `127.1`, `0177.0.0.1` and
 *     `%31%32%37.0.0.1` are `127.0.0.1`; any IPv6 spelling (`0:0:0:0:0:ffff:7f00:1`, upper case, a zone) is one address;
 *   - IPv6 forms that carry and reach an IPv4 address (mapped `::ffff:0:0/96`, NAT64 `64:ff9b::/96`, 6to4
 *     `2002::/16`) get the class of that IPv4 address;
 *   - ranges are node's `net.BlockList`, checked in a fixed order (first match wins), never hand-written arithmetic.
 */
import { BlockList, isIP } from 'node:net';

/** Where an address points; only `public` is on the internet. */
export type AddressClass =
  | 'public' | 'loopback' | 'private' | 'shared' | 'link-local' | 'metadata' | 'unspecified' | 'multicast' | 'reserved';

/**
 * Classes no server-side request of the platform ever reaches, whatever a setting or allowedHosts say: the cloud
 * metadata services (169.254.169.254 is link-local), and addresses that are not one host.
 */
export const NEVER_REACHABLE: ReadonlySet<AddressClass> = new Set<AddressClass>(['link-local', 'metadata', 'unspecified', 'multicast']);

type Subnet = readonly [network: string, prefixBits: number];

/** Checked in this order; the first class with a matching subnet wins (metadata before the ranges around it). */
const V4_CLASSES: readonly (readonly [AddressClass, readonly Subnet[]])[] = [
  ['metadata', [['100.100.100.200', 32]]], // Alibaba Cloud; 169.254.169.254 (AWS, GCP, Azure, OCI) is link-local
  ['unspecified', [['0.0.0.0', 8]]],
  ['loopback', [['127.0.0.0', 8]]],
  ['private', [['10.0.0.0', 8], ['172.16.0.0', 12], ['192.168.0.0', 16]]],
  ['shared', [['100.64.0.0', 10]]], // carrier-grade NAT
  ['link-local', [['169.254.0.0', 16]]],
  ['multicast', [['224.0.0.0', 4]]],
  ['reserved', [
    ['192.0.0.0', 24], ['192.0.2.0', 24], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24],
    ['240.0.0.0', 4], // and 255.255.255.255
  ]],
];

const V6_CLASSES: readonly (readonly [AddressClass, readonly Subnet[]])[] = [
  ['metadata', [['fd00:ec2::254', 128]]], // AWS over IPv6 (inside fc00::/7, so before it)
  ['unspecified', [['::', 128]]],
  ['loopback', [['::1', 128]]],
  ['reserved', [
    ['::', 96], // IPv4-compatible, deprecated (after :: and ::1, which it contains)
    ['100::', 64], // discard-only
    ['2001::', 32], // Teredo
    ['2001:db8::', 32], // documentation
  ]],
  // 64:ff9b::/96 is NAT64 and judged by the IPv4 address it carries (below); the rest of 64:ff9b::/32 is local-use.
  ['private', [['64:ff9b::', 32], ['fc00::', 7], ['fec0::', 10]]], // unique local, site-local (deprecated)
  ['link-local', [['fe80::', 10]]],
  ['multicast', [['ff00::', 8]]],
];

function lists(classes: readonly (readonly [AddressClass, readonly Subnet[]])[], family: 'ipv4' | 'ipv6') {
  return classes.map(([cls, subnets]) => {
    const list = new BlockList();
    for (const [network, bits] of subnets) list.addSubnet(network, bits, family);
    return [cls, list] as const;
  });
}

const V4_LISTS = lists(V4_CLASSES, 'ipv4');
const V6_LISTS = lists(V6_CLASSES, 'ipv6');

/** IPv6 prefixes whose addresses carry an IPv4 address that the packet reaches, and where its 32 bits sit. */
const EMBEDDING: readonly (readonly [BlockList, firstGroup: number])[] = [
  [subnet('::ffff:0:0', 96), 6], // IPv4-mapped
  [subnet('64:ff9b::', 96), 6], // NAT64 well-known prefix
  [subnet('2002::', 16), 1], // 6to4
];

function subnet(network: string, bits: number): BlockList {
  const list = new BlockList();
  list.addSubnet(network, bits, 'ipv6');
  return list;
}

const withoutZone = (address: string) => address.replace(/%.*$/, '');

/** An IPv6 address (valid, no zone) compressed and lower-cased by the URL parser: `0:0::FFFF:127.0.0.1` → `::ffff:7f00:1`. */
function compressedV6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

/** The 8 groups of an IPv6 address in the parser's form (hex groups only: it writes no dotted IPv4 tail). */
function groupsOf(compressed: string): number[] {
  const [head = '', tail] = compressed.split('::');
  const parse = (s: string) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const h = parse(head);
  const t = tail === undefined ? [] : parse(tail);
  return [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
}

/** The IPv4 address an IPv6 address carries and reaches (mapped, NAT64, 6to4), if any. */
function embeddedV4(compressed: string): string | undefined {
  for (const [prefix, first] of EMBEDDING) {
    if (!prefix.check(compressed, 'ipv6')) continue;
    const g = groupsOf(compressed);
    const hi = g[first]!;
    const lo = g[first + 1]!;
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return undefined;
}

/** The kind of an IP address (either family, any IPv6 spelling, a zone `%eth0` ignored). Not an IP address: 'reserved'. */
export function classifyAddress(address: string): AddressClass {
  const bare = withoutZone(address);
  const family = isIP(bare);
  if (family === 0) return 'reserved';
  if (family === 6) {
    const compressed = compressedV6(bare);
    const v4 = embeddedV4(compressed);
    if (v4 !== undefined) return classifyAddress(v4);
    return V6_LISTS.find(([, list]) => list.check(compressed, 'ipv6'))?.[0] ?? 'public';
  }
  return V4_LISTS.find(([, list]) => list.check(bare, 'ipv4'))?.[0] ?? 'public';
}

/** One spelling per address: IPv4 dotted, IPv4-mapped IPv6 as its IPv4, other IPv6 compressed, lower case, no zone. */
export function canonicalAddress(address: string): string {
  const bare = withoutZone(address);
  const family = isIP(bare);
  if (family === 4) return bare;
  if (family === 0) return bare.toLowerCase();
  const compressed = compressedV6(bare);
  const g = groupsOf(compressed);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`;
  return compressed;
}

/**
 * A host as the WHATWG URL parser (and so Chromium and node's http client) spells it: lower case, IPv4 in dotted
 * decimal whatever its spelling, IPv6 compressed without brackets, punycode, no trailing dot. Undefined when it is
 * not a host.
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

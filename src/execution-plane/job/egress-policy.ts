/**
 * What a job's browser may reach (ARCHITECTURE.md invariant 5), as pure functions shared by the egress proxy
 * (egress-proxy.ts) and the route guard (host-guard.ts), so both decide alike:
 * - host names and allowedHosts patterns are compared in their WHATWG URL form — the form Chromium sends — so
 *   `2130706433`, `0x7f.1`, `127.1`, `0177.0.0.1` and `%31%32%37.0.0.1` are all `127.0.0.1`, and
 *   `[0:0:0:0:0:ffff:7f00:1]` is `::ffff:7f00:1`: no spelling of an address gets past a pattern or a range check;
 * - every address a host resolves to is classified; a non-public one is reached only when a matching allowedHosts
 *   entry names it literally (or is `localhost`, for loopback addresses), link-local ones — the cloud metadata
 *   services — never;
 * - with no hosts at all (no allowedHosts in the job, no catalogue entry for its provider) nothing is reached.
 */
import { parsePattern, parsePatterns, patternMatches, type HostPattern } from '../../shared/host-match.ts';
import { canonicalAddress, canonicalHost, classifyAddress, type AddressClass } from '../../shared/net/address-class.ts';

// The classifier is shared with the control plane's webhook deliveries (src/shared/net/address-class.ts); these
// re-exports keep this module the one place the proxy, the route guard and their tests import egress rules from.
export { canonicalAddress, canonicalHost, classifyAddress, type AddressClass };

/** Why a request or connection was refused: the host is not allowed, its scheme is not, or where it resolves to. */
export type EgressBlockReason = 'not-allowed' | 'scheme' | 'proxy' | 'platform' | Exclude<AddressClass, 'public'>;

// Entries are matched by the rule the flow compiler applies too (src/shared/host-match.ts).
export { parsePattern, patternMatches, type HostPattern };

/**
 * A job's egress rules: the hosts it may reach (its allowedHosts, or its provider's: egress-hosts.ts decides which)
 * and, when a job's own list is narrowed by its provider's, that list too — a host must then match both, and a
 * non-public address must be named by both. An empty list reaches nothing (a job with no egress policy).
 */
export class EgressPolicy {
  private readonly lists: readonly (readonly HostPattern[])[];

  constructor(allowedHosts: readonly string[], within?: readonly string[]) {
    // An entry that does not parse matches nothing (the job schema and the catalogue already refuse such entries).
    this.lists = [allowedHosts, ...(within === undefined ? [] : [within])].map(parsePatterns);
  }

  /** The patterns of every list that let `host:port` through (`host` canonical); empty when one list has none. */
  match(host: string, port: string): readonly HostPattern[] {
    const perList = this.lists.map((list) => list.filter((p) => patternMatches(p, host, port)));
    return perList.every((m) => m.length > 0) ? perList.flat() : [];
  }

  /**
   * Why `host`, matched by `matched`, may not be reached at `address` — or undefined when it may. Link-local,
   * metadata, unspecified and multicast addresses are never reached; other non-public ones only when, in every
   * list, a matched pattern names that address, or is `localhost` and the address is loopback.
   */
  refuseAddress(host: string, address: string, matched: readonly HostPattern[]): EgressBlockReason | undefined {
    const cls = classifyAddress(address);
    if (cls === 'public') return undefined;
    if (cls === 'link-local' || cls === 'metadata' || cls === 'unspecified' || cls === 'multicast') return cls;
    const named = canonicalAddress(address);
    const names = (p: HostPattern) => !p.wildcard && (
      (p.ip && canonicalAddress(p.host) === named) || (p.host === 'localhost' && host === 'localhost' && cls === 'loopback'));
    const exempt = this.lists.every((list) => matched.some((p) => list.includes(p) && names(p)));
    return exempt ? undefined : cls;
  }
}

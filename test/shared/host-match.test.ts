/**
 * One rule for allowedHosts entries in both planes (src/shared/host-match.ts): every row of the table goes through
 * the flow compiler's check (a navigate step of a provider with these hosts) and through the worker's — the route
 * guard's verdict on the URL and the egress proxy's host check (EgressPolicy.match on the host and port the proxy
 * is asked for). A flow that compiles must be let through when it runs, and a URL the worker refuses must not compile.
 * Before the shared rule, the compiler ignored the `:port` of an entry while the worker enforced it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseSteps } from '../../src/control-plane/flows/compile.ts';
import { EgressPolicy } from '../../src/execution-plane/job/egress-policy.ts';
import { urlAllowed } from '../../src/execution-plane/job/host-guard.ts';
import { isSriError } from '../../src/shared/errors.ts';
import { hostAndPort } from '../../src/shared/host-match.ts';

/** [allowedHosts of the provider, URL of the step, allowed?] */
const TABLE: readonly (readonly [readonly string[], string, boolean])[] = [
  // host:port entries admit that port only — the row that compiled and then failed at run time.
  [['127.0.0.1:3000'], 'http://127.0.0.1:3100/invoices', false],
  [['127.0.0.1:3100'], 'http://127.0.0.1:3100/invoices', true],
  [['localhost:3100'], 'http://localhost/', false],
  [['portal.example:443'], 'https://portal.example/', true],
  [['portal.example:443'], 'http://portal.example/', false],
  [['portal.example:8443'], 'https://portal.example/', false],
  [['portal.example:8443'], 'https://portal.example:8443/x', true],
  [['portal.example:80'], 'http://portal.example:80/', true],
  // A host without a port: any port.
  [['portal.example'], 'http://portal.example:8080/', true],
  [['portal.example'], 'https://portal.example/', true],
  // *.domain: subdomains only, never the domain, a look-alike or an IP address.
  [['*.cargill.com'], 'https://a.cargill.com/', true],
  [['*.cargill.com'], 'https://a.b.cargill.com/', true],
  [['*.cargill.com'], 'https://cargill.com/', false],
  [['*.cargill.com'], 'https://evilcargill.com/', false],
  [['*.cargill.com:443'], 'https://a.cargill.com/', true],
  [['*.cargill.com:443'], 'https://a.cargill.com:8443/', false],
  [['*.0.0.1'], 'http://127.0.0.1/', false],
  // Spellings: case, a trailing dot and the form of an IPv4 address are the URL parser's.
  [['Portal.Example.'], 'https://portal.example/', true],
  [['portal.example'], 'https://PORTAL.example./', true],
  [['2130706433'], 'http://127.0.0.1/', true],
  [['127.0.0.1'], 'http://0x7f.1/', true],
  [['127.0.0.1'], 'http://2130706433:3100/', true],
  [['localhost'], 'http://LOCALHOST:3100/', true],
  [['localhost'], 'http://evil.localhost/', false],
  [['sri.gob.ec'], 'https://sri.gob.ec.evil.com/', false],
  // No entry: nothing.
  [[], 'https://portal.example/', false],
];

function compiles(allowedHosts: readonly string[], url: string): boolean {
  try {
    parseSteps([{ type: 'navigate', url }], { id: 'p', allowedHosts });
    return true;
  } catch (e) {
    if (isSriError(e) && e.code === 'FLOW_INVALID' && /is not in provider p's allowedHosts/.test(e.message)) return false;
    throw e;
  }
}

function workerLetsThrough(allowedHosts: readonly string[], url: string): { guard: boolean; proxy: boolean } {
  const policy = new EgressPolicy(allowedHosts);
  const target = hostAndPort(new URL(url))!;
  return { guard: urlAllowed(url, policy).allowed, proxy: policy.match(target.host, target.port).length > 0 };
}

describe('allowedHosts: one rule for the flow compiler and the worker', () => {
  it('gives the same verdict in the compiler, the route guard and the egress proxy for every row of the table', () => {
    for (const [hosts, url, expected] of TABLE) {
      const row = `${JSON.stringify(hosts)} ${url}`;
      assert.equal(compiles(hosts, url), expected, `compiler: ${row}`);
      assert.deepEqual(workerLetsThrough(hosts, url), { guard: expected, proxy: expected }, `worker: ${row}`);
    }
  });

  it('refuses to compile a flow whose URL has a port its provider\'s host:port entry does not name', () => {
    assert.throws(() => parseSteps([{ type: 'navigate', url: 'http://127.0.0.1:3100/' }], { id: 'p', allowedHosts: ['127.0.0.1:3000'] }),
      (e: unknown) => isSriError(e) && e.code === 'FLOW_INVALID' && /host 127\.0\.0\.1:3100 is not in provider p's allowedHosts \(127\.0\.0\.1:3000\)/.test(e.message));
    assert.throws(() => parseSteps([{ type: 'waitFor', url: 'https://portal.example:8443/done' }], { id: 'p', allowedHosts: ['portal.example:443'] }),
      (e: unknown) => isSriError(e) && e.code === 'FLOW_INVALID' && /steps\[0\] \(waitFor\)/.test(e.message));
  });
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { compileSteps, hostAllowed, lit } from '../../src/control-plane/flows/compile.ts';
import { checkVersion } from '../../src/control-plane/http/routes/flows.ts';
import { isSriError } from '../../src/shared/errors.ts';

const demo = { id: 'demo', allowedHosts: ['127.0.0.1', 'localhost'] };
const sri = { id: 'sri', allowedHosts: ['srienlinea.sri.gob.ec', '*.sri.gob.ec'] };

/** Syntax check only: node parses the text as an ES module and runs nothing. */
function assertParses(script: string): void {
  const r = spawnSync(process.execPath, ['--input-type=module', '--check'], { input: script, encoding: 'utf8' });
  assert.equal(r.status, 0, `script does not parse:\n${r.stderr}\n${script}`);
}

type Call = [string, ...unknown[]];
/** Runs the compiled script's default export against recording fakes and returns every call it made. */
async function runRecorded(script: string): Promise<Call[]> {
  const calls: Call[] = [];
  const rec = (name: string) => async (...args: unknown[]) => {
    calls.push([name, ...args.map((a) => (typeof a === 'function' ? 'fn' : a))]);
    if (name === 'helpers.download') await (args[0] as () => Promise<unknown>)();
    return name === 'helpers.extract' ? [{ row: 'x' }] : undefined;
  };
  const page = Object.fromEntries(['goto', 'click', 'fill', 'waitForSelector', 'waitForURL', 'waitForTimeout'].map((m) => [m, rec(`page.${m}`)]));
  const helpers = {
    ...Object.fromEntries(['screenshot', 'fillSecret', 'fillTotp', 'download', 'extract', 'log'].map((m) => [m, rec(`helpers.${m}`)])),
    setResult: (d: unknown) => { calls.push(['helpers.setResult', d]); },
  };
  const mod = await import(`data:text/javascript;base64,${Buffer.from(script).toString('base64')}`) as { default: (a: unknown) => Promise<void> };
  await mod.default({ page, payload: {}, helpers, context: {} });
  return calls;
}

function flowError(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (e) {
    if (isSriError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  assert.fail('expected an error');
}

describe('step compiler', () => {
  it('compiles every step type to the contract\'s calls, in order', async () => {
    const { script } = compileSteps([
      { type: 'navigate', url: 'http://127.0.0.1:3100/login' },
      { type: 'fill', selector: '#user', value: 'alice' },
      { type: 'fill', selector: '#password', secretRef: 'portalPassword' },
      { type: 'fill', selector: '#code', totp: 'portal' },
      { type: 'click', selector: 'button[type=submit]' },
      { type: 'waitFor', selector: 'table.invoices' },
      { type: 'waitFor', url: 'http://localhost:3100/invoices' },
      { type: 'waitFor', timeoutMs: 250 },
      { type: 'screenshot', fullPage: true },
      { type: 'screenshot' },
      { type: 'download', selector: 'a.pdf' },
      { type: 'extract', name: 'invoices', selector: 'table tr', fields: { number: 'td.number', link: { selector: 'a', attribute: 'href' }, id: { attribute: 'data-id' } } },
    ], demo);
    assert.match(script, /^\/\/ Generated/);
    assert.match(script, /export default async function run\(\{ page, payload, helpers, context \}\)/);
    assertParses(script);
    assert.deepEqual(await runRecorded(script), [
      ['page.goto', 'http://127.0.0.1:3100/login'],
      ['page.fill', '#user', 'alice'],
      ['helpers.fillSecret', '#password', 'portalPassword'],
      ['helpers.fillTotp', '#code', 'portal'],
      ['page.click', 'button[type=submit]'],
      ['page.waitForSelector', 'table.invoices'],
      ['page.waitForURL', 'fn'],
      ['page.waitForTimeout', 250],
      ['helpers.screenshot', { fullPage: true }],
      ['helpers.screenshot', { fullPage: false }],
      ['helpers.download', 'fn'],
      ['page.click', 'a.pdf'],
      ['helpers.extract', 'table tr', { number: 'td.number', link: { selector: 'a', attribute: 'href' }, id: { attribute: 'data-id' } }],
      ['helpers.setResult', { invoices: [{ row: 'x' }] }],
    ]);
    assert.equal(compileSteps([{ type: 'click', selector: 'a' }], demo).script, compileSteps([{ type: 'click', selector: 'a' }], demo).script, 'deterministic');
  });

  const attacks = [
    '"); process.exit(1); ("',
    "'); process.exit(1); ('",
    '`${process.exit(1)}`',
    '${globalThis.pwned = 1}',
    '</script><script>alert(1)</script>',
    'line\u2028break\u2029para',
    '\\"); process.exit(1); //',
    '*/ process.exit(1); /*',
    '\n}); process.exit(1); (async () => {',
  ];
  for (const attack of attacks) {
    it(`embeds ${JSON.stringify(attack)} only as a string literal (selector, value, URL path)`, async () => {
      const { script } = compileSteps([
        { type: 'navigate', url: `http://localhost/${encodeURIComponent(attack)}?q=${attack}` },
        { type: 'click', selector: attack },
        { type: 'fill', selector: attack, value: attack },
        { type: 'waitFor', selector: attack },
        { type: 'download', selector: attack },
        { type: 'extract', name: 'rows', selector: attack, fields: { cell: attack } },
      ], demo);
      assertParses(script);
      assert.ok(!script.includes('\u2028') && !script.includes('\u2029') && !script.includes('</script'), 'raw line separators and </script are escaped');
      const calls = await runRecorded(script);
      assert.equal((globalThis as Record<string, unknown>)['pwned'], undefined);
      assert.equal(calls[0]![0], 'page.goto');
      assert.deepEqual(calls.slice(1), [
        ['page.click', attack],
        ['page.fill', attack, attack],
        ['page.waitForSelector', attack],
        ['helpers.download', 'fn'],
        ['page.click', attack],
        ['helpers.extract', attack, { cell: attack }],
        ['helpers.setResult', { rows: [{ row: 'x' }] }],
      ]);
    });
  }

  it('lit() round-trips through JSON.parse', () => {
    for (const a of attacks) assert.equal(JSON.parse(lit(a)), a);
  });

  it('refuses an unknown step type naming its index', () => {
    const e = flowError(() => compileSteps([{ type: 'click', selector: 'a' }, { type: 'eval', code: 'x' }], demo));
    assert.equal(e.code, 'FLOW_INVALID');
    assert.match(e.message, /steps\[1\]: unknown step type "eval"/);
  });

  it('refuses bad step fields with the step index and field', () => {
    const e = flowError(() => compileSteps([{ type: 'fill', selector: '#a' }], demo));
    assert.match(e.message, /steps\[0\] \(fill\).*exactly one of value, secretRef or totp/);
    assert.match(flowError(() => compileSteps([{ type: 'fill', selector: '#a', secretRef: 'pw', totp: 'portal' }], demo)).message, /exactly one of value, secretRef or totp/);
    assert.match(flowError(() => compileSteps([{ type: 'fill', selector: '#a', totp: 'two words' }], demo)).message, /steps\[0\] \(fill\): totp/);
    assert.match(flowError(() => compileSteps([{ type: 'waitFor', selector: 'a', timeoutMs: 5 }], demo)).message, /exactly one of selector, url, urlPrefix or timeoutMs/);
    assert.match(flowError(() => compileSteps([{ type: 'click', selector: 'a', extra: 1 }], demo)).message, /steps\[0\] \(click\)/);
    assert.match(flowError(() => compileSteps([{ type: 'extract', name: '__proto__', selector: 'tr', fields: { a: 'td' } }], demo)).message, /steps\[0\] \(extract\): name/);
    assert.match(flowError(() => compileSteps([], demo)).message, /must not be empty/);
  });

  it('refuses URLs that are not http(s)', () => {
    for (const url of ['javascript:alert(1)', 'file:///etc/passwd', 'data:text/html,x', 'not a url', '/relative']) {
      const e = flowError(() => compileSteps([{ type: 'navigate', url }], demo));
      assert.equal(e.code, 'FLOW_INVALID', url);
      assert.match(e.message, /steps\[0\] \(navigate\)/);
    }
  });

  it('refuses hosts outside the provider\'s allowedHosts (navigate and waitFor url)', () => {
    const e = flowError(() => compileSteps([{ type: 'navigate', url: 'https://evil.example/' }], demo));
    assert.match(e.message, /host evil\.example is not in provider demo's allowedHosts/);
    assert.match(flowError(() => compileSteps([{ type: 'waitFor', url: 'https://sri.gob.ec.evil.com/' }], sri)).message, /steps\[0\] \(waitFor\)/);
    assert.doesNotThrow(() => compileSteps([{ type: 'navigate', url: 'http://localhost:3100/x' }], demo));
    assert.doesNotThrow(() => compileSteps([{ type: 'navigate', url: 'https://www.sri.gob.ec/x' }, { type: 'navigate', url: 'https://SRIENLINEA.sri.gob.ec/' }], sri));
  });

  it('compiles waitFor {url} to a literal comparison and {urlPrefix} to a prefix one, as predicates (never a glob string)', async () => {
    const { script } = compileSteps([
      { type: 'waitFor', url: 'http://LOCALHOST:3100/invoices' },
      { type: 'waitFor', urlPrefix: 'http://localhost:3100/inv' },
    ], demo);
    assertParses(script);
    assert.doesNotMatch(script, /waitForURL\(["'`]/, 'no string argument, which Playwright would read as a glob');
    const predicates: Array<(u: URL) => unknown> = [];
    const mod = await import(`data:text/javascript;base64,${Buffer.from(script).toString('base64')}`) as { default: (a: unknown) => Promise<void> };
    await mod.default({ page: { waitForURL: async (p: (u: URL) => unknown) => { predicates.push(p); } }, payload: {}, helpers: {}, context: {} });
    const [exact, prefix] = predicates;
    assert.ok(exact && prefix);
    assert.equal(exact(new URL('http://localhost:3100/invoices')), true, 'the normalised URL (lower-case host)');
    assert.equal(exact(new URL('http://localhost:3100/invoices/2')), false);
    assert.equal(exact(new URL('http://localhost:3100/invoice')), false);
    assert.equal(prefix(new URL('http://localhost:3100/invoices/2')), true);
    assert.equal(prefix(new URL('http://localhost:3100/other')), false);
  });

  it('refuses glob metacharacters (* ? [ ] { }) in waitFor {url} and {urlPrefix} with FLOW_INVALID naming the step and field', () => {
    for (const field of ['url', 'urlPrefix']) {
      for (const url of ['http://localhost:3100/**a**a**a**a**a**a**a**b', 'http://localhost/list?page=2', 'http://localhost/a[1]', 'http://localhost/{a,b}', 'http://localhost/a]', 'http://localhost/a}']) {
        const e = flowError(() => compileSteps([{ type: 'navigate', url: 'http://localhost/' }, { type: 'waitFor', [field]: url }], demo));
        assert.equal(e.code, 'FLOW_INVALID', url);
        assert.match(e.message, new RegExp(`^steps\\[1\\] \\(waitFor\\): ${field}: is compared literally and cannot hold \\* \\? \\[ \\] \\{ \\} \\(no glob patterns\\); to wait for any URL under a path, use urlPrefix`), e.message);
      }
    }
    assert.match(flowError(() => compileSteps([{ type: 'waitFor', urlPrefix: 'https://evil.example/' }], demo)).message, /steps\[0\] \(waitFor\): host evil\.example is not in provider demo's allowedHosts/);
  });

  it('matches *.x.com against subdomains only', () => {
    const allowed = (url: string, hosts: string[]) => hostAllowed(new URL(url), hosts);
    assert.equal(allowed('https://a.cargill.com/', ['*.cargill.com']), true);
    assert.equal(allowed('https://a.b.cargill.com/', ['*.cargill.com']), true);
    assert.equal(allowed('https://cargill.com/', ['*.cargill.com']), false);
    assert.equal(allowed('https://evilcargill.com/', ['*.cargill.com']), false);
    // host:port entries admit that port only, as the worker's egress policy does (test/shared/host-match.test.ts).
    assert.equal(allowed('http://localhost:3100/', ['localhost:3100']), true);
    assert.equal(allowed('http://localhost/', ['localhost:3100']), false);
  });

  it('accepts only plain semver versions', () => {
    assert.doesNotThrow(() => checkVersion('1.0.0'));
    assert.doesNotThrow(() => checkVersion('2.1.0-beta.1'));
    for (const v of ['1.0', 'v1.0.0', 'latest', '1.0.0+build.1', '../1.0.0']) {
      assert.equal(flowError(() => checkVersion(v)).code, 'FLOW_INVALID', v);
    }
  });
});

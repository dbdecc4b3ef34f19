/**
 * The step compiler's language of issue 16: select, forEach, paginate, ifExists, downloadAll, fetch, templates of the
 * job's metadata and of row fields. What the compiled scripts do is checked against recording fakes of the page API
 * (the end-to-end run on Chromium is test/e2e/steps.test.ts); what the compiler refuses is checked on valid, invalid
 * and hostile input.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { compileLoginSteps, compileSteps, secretRefsOfScript } from '../../src/control-plane/flows/compile.ts';
import { MAX_NESTING, MAX_STEPS } from '../../src/control-plane/flows/steps.ts';
import { sriComprobantesRecibidosSteps } from '../../src/control-plane/flows/templates/sri-comprobantes-recibidos.ts';
import { namesFilledBy } from '../../src/execution-plane/job/session-health.ts';
import { isSriError } from '../../src/shared/errors.ts';

const demo = { id: 'demo', allowedHosts: ['127.0.0.1', 'portal.example'] };

function assertParses(script: string): void {
  const r = spawnSync(process.execPath, ['--input-type=module', '--check'], { input: script, encoding: 'utf8' });
  assert.equal(r.status, 0, `script does not parse:\n${r.stderr}\n${script}`);
}

function flowError(fn: () => unknown): { code: string; message: string; details: unknown } {
  try {
    fn();
  } catch (e) {
    if (isSriError(e)) return { code: e.code, message: e.message, details: e.details };
    throw e;
  }
  assert.fail('expected an error');
}

type Call = unknown[];
interface FakeOptions {
  /** Elements a locator path matches (`page >> table tr`); 0 when absent. */
  counts?: Record<string, number>;
  /** Paths whose `isEnabled` is false. */
  disabled?: string[];
  /** What helpers.extract answers, by selector (null: row fields). */
  extract?: (selector: string | null, within: string | undefined) => unknown[];
}

/** Runs the script's default export against fakes of page, locators and helpers; returns every call in order. */
async function runRecorded(script: string, payload: unknown, o: FakeOptions = {}): Promise<Call[]> {
  const calls: Call[] = [];
  const locator = (path: string): Record<string, unknown> => {
    const act = (m: string) => async (...a: unknown[]) => { calls.push([`${path}.${m}`, ...a.map((x) => (typeof x === 'function' ? 'fn' : x))]); };
    return {
      path,
      locator: (s: string) => locator(`${path} >> ${s}`),
      first: () => locator(`${path} >> first`),
      nth: (i: number) => locator(`${path} >> nth=${i}`),
      count: async () => o.counts?.[path] ?? 0,
      isVisible: async () => true,
      isEnabled: async () => !(o.disabled ?? []).includes(path),
      click: act('click'), fill: act('fill'), selectOption: act('selectOption'), evaluate: act('evaluate'),
      waitFor: async (...a: unknown[]) => {
        calls.push([`${path}.waitFor`, ...a]);
        // ifExists {timeoutMs} waits for the element to be attached: absent here, that times out.
        if ((a[0] as { state?: string } | undefined)?.state === 'attached' && (o.counts?.[path.replace(/ >> first$/, '')] ?? 0) === 0) throw new Error('Timeout');
      },
    };
  };
  const rec = (name: string) => async (...a: unknown[]) => { calls.push([name, ...a.map((x) => (typeof x === 'function' ? 'fn' : x))]); };
  const page = {
    ...locator('page'),
    goto: rec('page.goto'), click: rec('page.click'), fill: rec('page.fill'), selectOption: rec('page.selectOption'),
    waitForSelector: rec('page.waitForSelector'), waitForLoadState: rec('page.waitForLoadState'),
  };
  const helpers = {
    log: (m: string) => { calls.push(['helpers.log', m]); },
    setResult: (d: unknown) => { calls.push(['helpers.setResult', JSON.parse(JSON.stringify(d))]); },
    screenshot: rec('helpers.screenshot'), fillSecret: rec('helpers.fillSecret'), handoff: rec('helpers.handoff'),
    fetch: rec('helpers.fetch'),
    download: async (trigger: () => Promise<unknown>, opts?: unknown) => {
      calls.push(['helpers.download', ...(opts === undefined ? [] : [opts])]);
      await trigger();
    },
    extract: async (selector: string | null, fields: unknown, within?: { path: string }) => {
      calls.push(['helpers.extract', selector, fields, ...(within ? [within.path] : [])]);
      return o.extract?.(selector, within?.path) ?? [];
    },
  };
  const mod = await import(`data:text/javascript;base64,${Buffer.from(script).toString('base64')}`) as { default: (a: unknown) => Promise<void> };
  await mod.default({ page, payload, helpers, context: {} });
  return calls;
}

describe('step compiler: steps that hold steps, templates, fetch', () => {
  it('compiles select by value and by label, with metadata templates, as data', async () => {
    const { script } = compileSteps([
      { type: 'select', selector: '#month', value: '{{metadata.month}}' },
      { type: 'select', selector: '#type', label: 'Tipo {{ metadata.type }}' },
      { type: 'fill', selector: '#year', value: '{{metadata.year}}' },
    ], demo);
    assertParses(script);
    const hostile = '"); process.exit(1); ("';
    assert.deepEqual(await runRecorded(script, { month: hostile, type: 'Factura', year: 2026 }), [
      ['page.selectOption', '#month', { value: hostile }],
      ['page.selectOption', '#type', { label: 'Tipo Factura' }],
      ['page.fill', '#year', '2026'],
    ]);
    await assert.rejects(runRecorded(script, { type: 'x', year: 1 }), /metadata has no value for month/);
    await assert.rejects(runRecorded(script, { month: { toString: 1 }, type: 'x', year: 1 }), /metadata has no value for month/);
  });

  it('translates a select\'s templated value through its values map; unlisted values pass as they are, prototype keys map to nothing', async () => {
    const { script } = compileSteps([{ type: 'select', selector: '#tipo', value: '{{metadata.type}}', values: { factura: '1', notaCredito: '3' } }], demo);
    assertParses(script);
    for (const [type, want] of [['factura', '1'], ['notaCredito', '3'], ['6', '6'], ['constructor', 'constructor'], ['__proto__', '__proto__']]) {
      assert.deepEqual(await runRecorded(script, { type }), [['page.selectOption', '#tipo', { value: want }]], type);
    }
    assert.throws(() => compileSteps([{ type: 'select', selector: '#t', label: 'x', values: { a: '1' } }], demo), /values translates a value/);
    assert.throws(() => compileSteps([{ type: 'select', selector: '#t', value: 'x', values: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`k${i}`, 'v'])) }], demo), /at most 100 entries/);
  });

  it('runs forEach\'s steps once per row, scoped to the row, with the row\'s fields in templates', async () => {
    const { script } = compileSteps([
      { type: 'forEach', selector: 'table tr', fields: { clave: 'td.clave' }, steps: [
        { type: 'click', selector: 'a.open' },
        { type: 'fill', selector: 'input', value: 'k={{row.clave}}' },
        { type: 'select', selector: 'select', label: '{{row.clave}}' },
        { type: 'waitFor', selector: 'span' },
        { type: 'download', selector: 'a.xml', saveAs: '{{row.clave}}.xml' },
        { type: 'fetch', url: 'http://127.0.0.1/auth/{{row.clave}}?m={{metadata.month}}', method: 'POST', body: '{"k":"{{row.clave}}"}', contentType: 'application/json', saveAs: '{{row.clave}}-auth.json' },
      ] },
    ], demo);
    assertParses(script);
    const calls = await runRecorded(script, { month: '02 &x' }, {
      counts: { 'page >> table tr': 2 },
      extract: (sel, within) => (sel === null ? [{ clave: within === 'page >> table tr >> nth=0' ? 'A/1' : 'B' }] : []),
    });
    const row = (i: number) => `page >> table tr >> nth=${i}`;
    assert.deepEqual(calls, [0, 1].flatMap((i) => {
      const k = i === 0 ? 'A/1' : 'B';
      return [
        ['helpers.extract', null, { clave: 'td.clave' }, row(i)],
        [`${row(i)} >> a.open >> first.click`],
        [`${row(i)} >> input >> first.fill`, `k=${k}`],
        [`${row(i)} >> select >> first.selectOption`, { label: k }],
        [`${row(i)} >> span >> first.waitFor`],
        ['helpers.download', { saveAs: `${k}.xml` }],
        [`${row(i)} >> a.xml >> first.click`],
        // Values in a URL are percent-encoded: a row or metadata value cannot add a path segment or a parameter.
        ['helpers.fetch', `http://127.0.0.1/auth/${encodeURIComponent(k)}?m=02%20%26x`, { method: 'POST', body: `{"k":"${k}"}`, contentType: 'application/json', saveAs: `${k}-auth.json` }],
      ];
    }));
  });

  it('visits at most maxItems rows and says so in the log', async () => {
    const { script } = compileSteps([{ type: 'forEach', selector: 'tr', maxItems: 2, steps: [{ type: 'click', selector: 'a' }] }], demo);
    const calls = await runRecorded(script, {}, { counts: { 'page >> tr': 5 } });
    assert.match(String(calls[0]![1]), /5 elements match "tr"; only the first 2 are visited/);
    assert.equal(calls.filter((c) => String(c[0]).endsWith('.click')).length, 2);
  });

  it('paginates: runs the steps, clicks next while it is there and enabled, up to maxPages, accumulating extracted rows', async () => {
    const steps = [{ type: 'paginate', next: '#next', maxPages: 3, steps: [{ type: 'extract', name: 'rows', selector: 'tr', fields: { a: 'td' } }] }];
    const { script } = compileSteps(steps, demo);
    assertParses(script);
    let n = 0;
    const extract = () => [{ a: String(++n) }];
    // next is there and enabled throughout: maxPages stops it (3 pages, 2 clicks).
    let calls = await runRecorded(script, {}, { counts: { 'page >> #next >> first': 1 }, extract });
    assert.equal(calls.filter((c) => c[0] === 'page >> #next >> first.click').length, 2);
    assert.equal(calls.filter((c) => c[0] === 'page.waitForSelector').length, 2);
    assert.deepEqual(calls.at(-1), ['helpers.setResult', { rows: [{ a: '1' }, { a: '2' }, { a: '3' }] }]);
    // next is disabled on the first page: one page, no click.
    n = 0;
    calls = await runRecorded(script, {}, { counts: { 'page >> #next >> first': 1 }, disabled: ['page >> #next >> first'], extract });
    assert.equal(calls.filter((c) => String(c[0]).endsWith('.click')).length, 0);
    assert.deepEqual(calls.at(-1), ['helpers.setResult', { rows: [{ a: '1' }] }]);
    // no next at all: one page.
    calls = await runRecorded(script, {}, { extract });
    assert.equal(calls.filter((c) => String(c[0]).endsWith('.click')).length, 0);
  });

  it('runs ifExists\'s steps or its else, waiting only when timeoutMs is given', async () => {
    const { script } = compileSteps([
      { type: 'ifExists', selector: '.captcha', steps: [{ type: 'handoff', reason: 'Solve it' }], else: [{ type: 'click', selector: '#go' }] },
      { type: 'ifExists', selector: '#ci', timeoutMs: 500, steps: [{ type: 'fill', selector: '#ci', secretRef: 'ci' }] },
    ], demo);
    assertParses(script);
    assert.deepEqual(await runRecorded(script, {}, { counts: { 'page >> .captcha': 1 } }), [
      ['helpers.handoff', 'Solve it'],
      ['page >> #ci >> first.waitFor', { state: 'attached', timeout: 500 }],
    ]);
    assert.deepEqual(await runRecorded(script, {}, { counts: { 'page >> #ci': 1 } }), [
      ['page.click', '#go'],
      ['page >> #ci >> first.waitFor', { state: 'attached', timeout: 500 }],
      ['helpers.fillSecret', '#ci', 'ci'],
    ]);
    // A fillSecret inside ifExists is still found in the signed script, so the job carries the secret.
    assert.deepEqual(secretRefsOfScript(script), ['ci']);
  });

  it('downloads every match of downloadAll, under the portal\'s names or a template with {{index}}', async () => {
    const { script } = compileSteps([
      { type: 'downloadAll', selector: 'a.pdf' },
      { type: 'downloadAll', selector: 'a.xml', saveAs: '{{metadata.month}}-{{index}}.xml', maxItems: 2 },
    ], demo);
    assertParses(script);
    const calls = await runRecorded(script, { month: '03' }, { counts: { 'page >> a.pdf': 2, 'page >> a.xml': 3 } });
    assert.deepEqual(calls.filter((c) => c[0] !== 'helpers.log'), [
      ['helpers.download'], ['page >> a.pdf >> nth=0.click'], ['helpers.download'], ['page >> a.pdf >> nth=1.click'],
      ['helpers.download', { saveAs: '03-1.xml' }], ['page >> a.xml >> nth=0.click'],
      ['helpers.download', { saveAs: '03-2.xml' }], ['page >> a.xml >> nth=1.click'],
    ]);
  });

  it('keeps the text of flows without the new steps as it was (same hash for the same steps)', () => {
    const { script } = compileSteps([{ type: 'click', selector: 'a' }, { type: 'fill', selector: '#a', value: 'x' }], demo);
    assert.equal(script.split('\n').slice(1).join('\n'), 'export default async function run({ page, payload, helpers, context }) {\n  // step 1: click\n  await page.click("a");\n  // step 2: fill\n  await page.fill("#a", "x");\n}\n');
  });

  const attacks = ['"); process.exit(1); ("', '`${process.exit(1)}`', '</script><script>alert(1)</script>', '\n}); process.exit(1); (async () => {', 'a\u2028b'];
  for (const attack of attacks) {
    it(`embeds ${JSON.stringify(attack)} only as data in nested steps, templates and fetch`, async () => {
      const { script } = compileSteps([
        { type: 'forEach', selector: attack, fields: { k: attack }, steps: [
          { type: 'ifExists', selector: attack, steps: [{ type: 'fill', selector: attack, value: `${attack}{{row.k}}${attack}` }] },
          { type: 'fetch', url: `http://127.0.0.1/x?q=${encodeURIComponent(attack)}`, method: 'POST', body: attack, saveAs: attack },
        ] },
        { type: 'paginate', next: attack, maxPages: 2, steps: [{ type: 'downloadAll', selector: attack, saveAs: attack }] },
        { type: 'select', selector: attack, label: attack },
      ], demo);
      assertParses(script);
      assert.ok(!script.includes('\u2028') && !script.includes('</script'));
      const calls = await runRecorded(script, {}, {
        counts: { [`page >> ${attack}`]: 1, [`page >> ${attack} >> nth=0 >> ${attack}`]: 1 },
        extract: () => [{ k: attack }],
      });
      assert.equal((globalThis as Record<string, unknown>)['pwned'], undefined);
      assert.deepEqual(calls.find((c) => String(c[0]).endsWith('.fill')), [`page >> ${attack} >> nth=0 >> ${attack} >> first.fill`, attack.repeat(3)]);
      assert.deepEqual(calls.find((c) => c[0] === 'page.selectOption'), ['page.selectOption', attack, { label: attack }]);
    });
  }

  it('refuses templates it does not know, in the place it does not know them', () => {
    const cases: Array<[unknown[], RegExp]> = [
      [[{ type: 'fill', selector: '#a', value: '{{metadata.a"+process.exit(1)+"}}' }], /steps\[0\] \(fill\): value: ".*" is not a template/],
      [[{ type: 'fill', selector: '#a', value: '{{ env.HOME }}' }], /is not a template: use \{\{metadata.NAME\}\}/],
      [[{ type: 'fill', selector: '#a', value: '{{metadata.__proto__}}' }], /is not a template/],
      [[{ type: 'fill', selector: '#a', value: '{{row.k}}' }], /\{\{row.k\}\} is only available inside a forEach with fields/],
      [[{ type: 'forEach', selector: 'tr', fields: { a: 'td' }, steps: [{ type: 'fill', selector: 'i', value: '{{row.b}}' }] }], /steps\[0\]\.steps\[0\] \(fill\): value: \{\{row.b\}\}: the enclosing forEach reads no field "b" \(its fields: a\)/],
      [[{ type: 'download', selector: 'a', saveAs: '{{index}}.pdf' }], /\{\{index\}\} is only available in downloadAll's saveAs/],
      [[{ type: 'navigate', url: 'http://{{metadata.host}}/x' }], /templates may choose the path or query of a URL, not its scheme or host/],
      [[{ type: 'fetch', url: 'http://127.0.0.1{{metadata.port}}/x' }], /not its scheme or host/],
      [[{ type: 'fetch', url: '{{metadata.url}}' }], /not its scheme or host/],
    ];
    for (const [steps, re] of cases) {
      const e = flowError(() => compileSteps(steps, demo));
      assert.equal(e.code, 'FLOW_INVALID');
      assert.match(e.message, re);
    }
    // A lone }} is text (a JSON body closing two objects).
    assert.doesNotThrow(() => compileSteps([{ type: 'fetch', url: 'http://127.0.0.1/a', method: 'POST', body: '{"a":{"b":"{{metadata.b}}"}}' }], demo));
  });

  it('refuses hosts off the allowlist in fetch and templated navigate, and requests it cannot make', () => {
    assert.match(flowError(() => compileSteps([{ type: 'fetch', url: 'https://evil.example/steal' }], demo)).message,
      /steps\[0\] \(fetch\): host evil.example is not in provider demo's allowedHosts/);
    assert.match(flowError(() => compileSteps([{ type: 'ifExists', selector: 'a', steps: [{ type: 'navigate', url: 'https://evil.example/{{metadata.p}}' }] }], demo)).message,
      /steps\[0\]\.steps\[0\] \(navigate\): host evil.example/);
    assert.match(flowError(() => compileSteps([{ type: 'fetch', url: 'file:///etc/passwd' }], demo)).message, /only http and https/);
    assert.match(flowError(() => compileSteps([{ type: 'fetch', url: 'http://127.0.0.1/', body: 'x' }], demo)).message, /a GET request has no body/);
    assert.match(flowError(() => compileSteps([{ type: 'fetch', url: 'http://127.0.0.1/', method: 'TRACE' }], demo)).message, /steps\[0\] \(fetch\): method/);
    assert.match(flowError(() => compileSteps([{ type: 'fetch', url: 'http://127.0.0.1/', method: 'POST', contentType: 'text/xml\r\nX-Evil: 1' }], demo)).message, /contentType: must be a media type/);
    assert.match(flowError(() => compileSteps([{ type: 'select', selector: 's', value: 'a', label: 'b' }], demo)).message, /exactly one of value or label/);
    assert.match(flowError(() => compileSteps([{ type: 'paginate', next: '#n', steps: [{ type: 'click', selector: 'a' }] }], demo)).message, /steps\[0\] \(paginate\): maxPages/);
    assert.match(flowError(() => compileSteps([{ type: 'forEach', selector: 'tr', steps: [] }], demo)).message, /steps: must not be empty/);
    assert.match(flowError(() => compileSteps([{ type: 'forEach', selector: 'tr', steps: [{ type: 'fill', selector: '#p', secretRef: 'pw' }] }], demo)).message,
      /steps\[0\]\.steps\[0\] \(fill\): fill \{secretRef\} and fill \{totp\} fill a field of the page, not of a forEach row/);
    assert.match(flowError(() => compileSteps([{ type: 'ifExists', selector: 'a', steps: [{ type: 'eval', code: 'x' }] }], demo)).message,
      /steps\[0\]\.steps\[0\]: unknown step type "eval"/);
  });

  it('refuses nesting deeper than the limit, without descending into a nesting bomb', () => {
    const nest = (depth: number): unknown => (depth === 0 ? { type: 'click', selector: 'a' } : { type: 'ifExists', selector: 'a', steps: [nest(depth - 1)] });
    assert.doesNotThrow(() => compileSteps([nest(MAX_NESTING)], demo));
    const e = flowError(() => compileSteps([nest(MAX_NESTING + 1)], demo));
    assert.match(e.message, new RegExp(`steps may be nested at most ${MAX_NESTING} deep`));
    assert.match(e.message, /^steps\[0\](\.steps\[0\]){4} \(ifExists\)/);
    // 100,000 levels: refused at level 5, well before any recursion limit.
    let bomb: unknown = { type: 'click', selector: 'a' };
    for (let i = 0; i < 100_000; i++) bomb = { type: 'forEach', selector: 'tr', steps: [bomb] };
    const started = process.hrtime.bigint();
    assert.match(flowError(() => compileSteps([bomb], demo)).message, /nested at most/);
    assert.ok(process.hrtime.bigint() - started < 2_000_000_000n, 'refused without walking the bomb');
  });

  it('counts nested steps towards the limit of 200 steps', () => {
    const clicks = (n: number) => Array.from({ length: n }, () => ({ type: 'click', selector: 'a' }));
    assert.doesNotThrow(() => compileSteps([{ type: 'forEach', selector: 'tr', steps: clicks(MAX_STEPS - 1) }], demo));
    const e = flowError(() => compileSteps([{ type: 'forEach', selector: 'tr', steps: clicks(MAX_STEPS) }], demo));
    assert.match(e.message, /a flow has at most 200 steps, nested steps included; steps\[0\]\.steps\[199\] is one too many/);
    // Many containers each with many steps: refused at the 201st (151 + 1 + 49), whatever the arrays hold after it.
    const wide = Array.from({ length: 10 }, () => ({ type: 'paginate', next: '#n', maxPages: 2, steps: clicks(150) }));
    assert.match(flowError(() => compileSteps(wide, demo)).message, /at most 200 steps, nested steps included; steps\[1\]\.steps\[48\]/);
    assert.match(flowError(() => compileSteps([{ type: 'ifExists', selector: 'a', steps: clicks(MAX_STEPS + 1) }], demo)).message, /steps\[0\] \(ifExists\): steps/);
  });

  it('lets login flows choose with select and branch with ifExists, and nothing they cannot use', () => {
    const provider = { ...demo, name: 'demo' };
    const { script } = compileLoginSteps([
      { type: 'navigate', url: 'http://127.0.0.1/login' },
      { type: 'ifExists', selector: '#ci', steps: [{ type: 'fill', selector: '#ci', secretRef: 'ci' }] },
      { type: 'select', selector: '#kind', value: 'ruc' },
    ], provider);
    assertParses(script.replace(/^[^\n]*\n/, ''));
    // The worker reads what a login flow fills from its script (whether a connection can sign in): nested fills too.
    assert.deepEqual(namesFilledBy(script), { secrets: ['ci'], totp: [] });
    assert.match(flowError(() => compileLoginSteps([{ type: 'ifExists', selector: 'a', steps: [{ type: 'download', selector: 'a' }] }], provider)).message,
      /steps\[0\]\.steps\[0\] \(download\): a login flow may use only/);
  });

  it('compiles the SRI comprobantes-recibidos template, by download and by the authorisation service', () => {
    const sri = { id: 'sri', allowedHosts: ['127.0.0.1'] };
    const byLink = compileSteps(sriComprobantesRecibidosSteps({ base: 'http://127.0.0.1:3100' }), sri).script;
    assertParses(byLink);
    assert.match(byLink, /await helpers\.download\(\(\) => \$row\d+\.locator\(.*\)\.first\(\)\.click\(\), \{ saveAs: \(\$field\(\$f\d+, "claveAcceso"\) \+ "\.xml"\) \}\);/);
    assert.deepEqual(secretRefsOfScript(byLink).sort(), ['sriPassword', 'sriUser']);
    const byService = compileSteps(sriComprobantesRecibidosSteps({ base: 'http://127.0.0.1:3100', authorisationUrl: 'http://127.0.0.1:3100/sri/comprobantes-electronicos-ws/AutorizacionComprobantesOffline' }), sri).script;
    assertParses(byService);
    assert.match(byService, /await helpers\.fetch\("http:\/\/127\.0\.0\.1:3100\/sri\/comprobantes-electronicos-ws\/AutorizacionComprobantesOffline", \{ method: "POST", body: \(.*\$field\(\$f\d+, "claveAcceso"\)/);
    assert.match(flowError(() => compileSteps(sriComprobantesRecibidosSteps({ base: 'https://srienlinea.sri.gob.ec' }), sri)).message, /host srienlinea\.sri\.gob\.ec is not in provider sri's allowedHosts/);
  });
});

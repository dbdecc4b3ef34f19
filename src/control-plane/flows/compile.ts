/**
 * The step compiler: a pure function from (steps, provider) to the script text of ARCHITECTURE.md "Script shape".
 * Every user value enters the script as a JSON string literal (`lit`), never by concatenation, so no selector,
 * URL or value can close a string and add code. Navigation targets must be http(s) URLs on the provider's hosts.
 */
import { SriError } from '../../shared/errors.ts';
import { urlHostAllowed } from '../../shared/host-match.ts';
import { loginScriptHeader } from '../../shared/provider-catalogue.ts';
import { describeZodError } from '../../shared/schemas.ts';
import { MAX_NESTING, MAX_STEPS, STEP_SCHEMAS, STEP_TYPES, type Step, type StepType } from './steps.ts';
import { isLiteral, parseTemplate, sample, type TemplatePart } from './template.ts';

export interface CompileProvider {
  readonly id: string;
  readonly allowedHosts: readonly string[];
}

/**
 * JSON.stringify, plus escapes for U+2028/U+2029 (line terminators in older JS parsers) and `<`/`>` (so a
 * script embedded in HTML cannot end a <script> element). JSON.parse of the literal gives back the exact value.
 */
export function lit(value: unknown): string {
  return JSON.stringify(value).replace(/[\u2028\u2029<>]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Whether the URL's host and port are on the provider's hosts — by the rule the worker's egress policy applies
 * (src/shared/host-match.ts), `host:port` entries included, so a flow that compiles is not refused when it runs.
 */
export function hostAllowed(url: URL, allowedHosts: readonly string[]): boolean {
  return urlHostAllowed(url, allowedHosts);
}

function flowInvalid(message: string, details?: Record<string, unknown>): SriError {
  // `step`: the index of the flow's own step the problem is in (the dashboard's editor marks it); `path` names the
  // nested step itself (`steps[2].steps[0]`).
  const top = typeof details?.['path'] === 'string' ? /^steps\[(\d+)\]/.exec(details['path']) : null;
  return new SriError('FLOW_INVALID', message, { details: top ? { step: Number(top[1]), ...details } : details });
}

function checkUrl(where: string, raw: string, provider: CompileProvider): void {
  const bad = (message: string) => flowInvalid(message, { path: where.replace(/ \(.*$/, '') });
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw bad(`${where}: "${raw.slice(0, 200)}" is not an absolute URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw bad(`${where}: only http and https URLs are allowed, got ${url.protocol}`);
  }
  if (url.username || url.password) throw bad(`${where}: URLs must not carry credentials; use a secretRef`);
  if (!hostAllowed(url, provider.allowedHosts)) {
    throw bad(`${where}: host ${url.host} is not in provider ${provider.id}'s allowedHosts (${provider.allowedHosts.join(', ')})`);
  }
}

interface ParseState {
  readonly provider: CompileProvider;
  /** Steps seen so far, nested ones included. */
  count: number;
  /** Step types allowed (login flows); undefined: all. */
  readonly only?: readonly StepType[];
}

interface ParseScope {
  /** Containers around this list (0: the flow's own steps). */
  readonly depth: number;
  /** Inside a forEach: selectors resolve in the row. */
  readonly inRow: boolean;
  /** Fields of the innermost forEach that reads some ({{row.NAME}}). */
  readonly rowFields?: ReadonlySet<string>;
}

function checkTemplate(where: string, field: string, text: string, scope: ParseScope, index = false): TemplatePart[] {
  try {
    return parseTemplate(text, { ...(scope.rowFields ? { rowFields: scope.rowFields } : {}), index });
  } catch (e) {
    throw flowInvalid(`${where}: ${field}: ${(e as Error).message}`, { path: where, field });
  }
}

/**
 * A URL that may hold templates: the part before the first one must name the whole origin and end it (`/`, `?` or
 * `#` after the host), so a job's metadata or a row can choose a path or a query, never the host; the host is then
 * checked as for a literal URL, and the values are percent-encoded when the script builds the URL.
 */
function checkTemplatedUrl(where: string, field: string, raw: string, scope: ParseScope, provider: CompileProvider): void {
  const parts = checkTemplate(where, field, raw, scope);
  if (!isLiteral(parts)) {
    const prefix = typeof parts[0] === 'string' ? parts[0] : '';
    if (!/^https?:\/\/[^/?#{}]+[/?#]/i.test(prefix)) {
      throw flowInvalid(`${where}: ${field}: templates may choose the path or query of a URL, not its scheme or host; write the origin first (https://host/…{{metadata.NAME}})`, { path: where, field });
    }
  }
  checkUrl(where, sample(parts), provider);
}

function parseList(raw: unknown[], prefix: string, scope: ParseScope, state: ParseState): Step[] {
  return raw.map((item, i) => parseStep(item, `${prefix}[${i}]`, scope, state));
}

function parseStep(item: unknown, path: string, scope: ParseScope, state: ParseState): Step {
  if (++state.count > MAX_STEPS) throw flowInvalid(`a flow has at most ${MAX_STEPS} steps, nested steps included; ${path} is one too many`, { path, limit: MAX_STEPS });
  const type = (item as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !Object.hasOwn(STEP_SCHEMAS, type)) {
    throw flowInvalid(`${path}: unknown step type ${JSON.stringify(type ?? null)}; known types: ${STEP_TYPES.join(', ')}`, { path });
  }
  const where = `${path} (${type})`;
  if (state.only && !state.only.includes(type as StepType)) throw flowInvalid(`${where}: a login flow may use only ${state.only.join(', ')} steps`, { path });
  const r = STEP_SCHEMAS[type as StepType].safeParse(item);
  if (!r.success) throw flowInvalid(`${where}: ${describeZodError(r.error)}`, { path, issues: r.error.issues });
  const step = r.data as Step;
  const { provider } = state;
  switch (step.type) {
    case 'navigate': checkTemplatedUrl(where, 'url', step.url, scope, provider); break;
    case 'waitFor':
      if (step.url !== undefined) checkUrl(where, step.url, provider);
      if (step.urlPrefix !== undefined) checkUrl(where, step.urlPrefix, provider);
      break;
    case 'fill':
      if (scope.inRow && step.value === undefined) {
        throw flowInvalid(`${where}: fill {secretRef} and fill {totp} fill a field of the page, not of a forEach row; put the step outside the forEach`, { path });
      }
      if (step.value !== undefined) checkTemplate(where, 'value', step.value, scope);
      break;
    case 'select':
      if (step.value !== undefined) checkTemplate(where, 'value', step.value, scope);
      if (step.label !== undefined) checkTemplate(where, 'label', step.label, scope);
      break;
    case 'download': if (step.saveAs !== undefined) checkTemplate(where, 'saveAs', step.saveAs, scope); break;
    case 'downloadAll': if (step.saveAs !== undefined) checkTemplate(where, 'saveAs', step.saveAs, scope, true); break;
    case 'fetch':
      checkTemplatedUrl(where, 'url', step.url, scope, provider);
      if (step.body !== undefined) checkTemplate(where, 'body', step.body, scope);
      if (step.saveAs !== undefined) checkTemplate(where, 'saveAs', step.saveAs, scope);
      break;
    case 'forEach': case 'paginate': case 'ifExists': {
      if (scope.depth + 1 > MAX_NESTING) {
        throw flowInvalid(`${where}: steps may be nested at most ${MAX_NESTING} deep (forEach, paginate and ifExists inside each other)`, { path, limit: MAX_NESTING });
      }
      const inner: ParseScope = step.type === 'forEach'
        ? { depth: scope.depth + 1, inRow: true, ...(step.fields && Object.keys(step.fields).length ? { rowFields: new Set(Object.keys(step.fields)) } : scope.rowFields ? { rowFields: scope.rowFields } : {}) }
        : { ...scope, depth: scope.depth + 1 };
      step.steps = parseList(step.steps as unknown[], `${path}.steps`, inner, state);
      if (step.type === 'ifExists' && step.else !== undefined) step.else = parseList(step.else as unknown[], `${path}.else`, inner, state);
      break;
    }
    default: break;
  }
  return step;
}

/**
 * Checks every step — nested ones too — against its schema, the provider's hosts, the templates it may use and the
 * limits (MAX_STEPS steps in all, MAX_NESTING levels); the first problem is a FLOW_INVALID naming the step by its
 * path (`steps[2].steps[0] (click): …`).
 */
export function parseSteps(raw: unknown, provider: CompileProvider, only?: readonly StepType[]): Step[] {
  if (!Array.isArray(raw)) throw flowInvalid('steps must be an array');
  if (raw.length === 0) throw flowInvalid('steps must not be empty');
  if (raw.length > MAX_STEPS) throw flowInvalid(`a flow has at most ${MAX_STEPS} steps, got ${raw.length}`, { limit: MAX_STEPS });
  return parseList(raw, 'steps', { depth: 0, inRow: false }, { provider, count: 0, ...(only ? { only } : {}) });
}

/** Where a step's code runs: its scope (`page`, or a forEach's row locator) and what its templates may use. */
interface EmitScope {
  /** `page`, or the variable of the row's locator. */
  readonly scope: string;
  /** The variable holding the innermost forEach's row fields. */
  readonly rowVar?: string;
  /** Inside forEach or paginate: extract accumulates rows across iterations. */
  readonly inLoop: boolean;
  /** The variable of downloadAll's index, for {{index}}. */
  readonly indexVar?: string;
}

/** State of one compilation: fresh variable names (in order, so the text is deterministic) and helpers used. */
class Emitter {
  private next = 1;
  readonly uses = new Set<'meta' | 'field' | 'append'>();
  readonly lines: string[] = [];

  id(): number { return this.next++; }

  template(text: string, s: EmitScope, encode = false): string {
    const parts = parseTemplate(text, { rowFields: ANY_FIELD, index: s.indexVar !== undefined });
    if (isLiteral(parts)) return lit(parts.join(''));
    return `(${parts.map((p) => {
      if (typeof p === 'string') return lit(p);
      let v: string;
      if (p.ns === 'metadata') { this.uses.add('meta'); v = `$meta(${lit(p.name)})`; }
      else if (p.ns === 'row') { this.uses.add('field'); v = `$field(${s.rowVar!}, ${lit(p.name)})`; }
      else v = `String(${s.indexVar!} + 1)`;
      return encode ? `encodeURIComponent(${v})` : v;
    }).join(' + ')})`;
  }
}

/** Parse already checked the row fields; here any name goes (the emitter only turns parts into code). */
const ANY_FIELD: ReadonlySet<string> = { has: () => true } as unknown as ReadonlySet<string>;

/** `SCOPE.locator(SEL).first()`: a selector inside a row (first match, as page.click takes the first). */
const inScope = (s: EmitScope, selector: string) => `${s.scope}.locator(${lit(selector)}).first()`;

function emitList(steps: readonly Step[], s: EmitScope, e: Emitter, indent: string, label: string): void {
  steps.forEach((step, i) => {
    e.lines.push(`${indent}// step ${label}${i + 1}: ${step.type}`);
    emitStep(step, s, e, indent, `${label}${i + 1}.`);
  });
}

function emitStep(step: Step, s: EmitScope, e: Emitter, indent: string, label: string): void {
  const out = (line: string) => e.lines.push(indent + line);
  const onPage = s.scope === 'page';
  switch (step.type) {
    case 'navigate': out(`await page.goto(${e.template(step.url, s, true)});`); return;
    case 'click': out(onPage ? `await page.click(${lit(step.selector)});` : `await ${inScope(s, step.selector)}.click();`); return;
    case 'fill':
      if (step.secretRef !== undefined) { out(`await helpers.fillSecret(${lit(step.selector)}, ${lit(step.secretRef)});`); return; }
      // The worker computes the code from the connection's seed, outside the script (docs/security.md "TOTP seeds").
      if (step.totp !== undefined) { out(`await helpers.fillTotp(${lit(step.selector)}, ${lit(step.totp)});`); return; }
      out(onPage ? `await page.fill(${lit(step.selector)}, ${e.template(step.value!, s)});` : `await ${inScope(s, step.selector)}.fill(${e.template(step.value!, s)});`);
      return;
    case 'waitFor':
      if (step.selector !== undefined) { out(onPage ? `await page.waitForSelector(${lit(step.selector)});` : `await ${inScope(s, step.selector)}.waitFor();`); return; }
      // A predicate, not the URL itself: Playwright would read a string as a glob. The sandbox child runs it (never
      // the worker), and it compares the normalised URL literally.
      if (step.url !== undefined) { out(`await page.waitForURL((url) => url.href === ${lit(new URL(step.url).href)});`); return; }
      if (step.urlPrefix !== undefined) { out(`await page.waitForURL((url) => url.href.startsWith(${lit(new URL(step.urlPrefix).href)}));`); return; }
      out(`await page.waitForTimeout(${lit(step.timeoutMs)});`);
      return;
    case 'screenshot': out(`await helpers.screenshot({ fullPage: ${lit(step.fullPage ?? false)} });`); return;
    case 'download': {
      const trigger = onPage ? `() => page.click(${lit(step.selector)})` : `() => ${inScope(s, step.selector)}.click()`;
      out(`await helpers.download(${trigger}${step.saveAs === undefined ? '' : `, { saveAs: ${e.template(step.saveAs, s)} }`});`);
      return;
    }
    case 'handoff': out(`await helpers.handoff(${lit(step.reason)}${step.timeoutMs === undefined ? '' : `, { timeoutMs: ${lit(step.timeoutMs)} }`});`); return;
    case 'extract': {
      // Fields go through JSON.parse so that every key is an own data property, whatever its name.
      const call = `await helpers.extract(${lit(step.selector)}, JSON.parse(${lit(JSON.stringify(step.fields))})${onPage ? '' : `, ${s.scope}`})`;
      if (!s.inLoop) { out(`helpers.setResult({ [${lit(step.name)}]: ${call} });`); return; }
      e.uses.add('append');
      out(`$append(${lit(step.name)}, ${call});`);
      return;
    }
    case 'select': {
      const value = step.value === undefined ? undefined
        // The map is data (JSON, an object literal); own keys only, so "constructor" or "__proto__" map to nothing.
        : step.values ? `((m, v) => (Object.hasOwn(m, v) ? m[v] : v))(${JSON.stringify(step.values)}, ${e.template(step.value, s)})`
          : e.template(step.value, s);
      const option = value !== undefined ? `{ value: ${value} }` : `{ label: ${e.template(step.label!, s)} }`;
      out(onPage ? `await page.selectOption(${lit(step.selector)}, ${option});` : `await ${inScope(s, step.selector)}.selectOption(${option});`);
      return;
    }
    case 'fetch': {
      const o = [`method: ${lit(step.method ?? 'GET')}`];
      if (step.body !== undefined) o.push(`body: ${e.template(step.body, s)}`);
      if (step.contentType !== undefined) o.push(`contentType: ${lit(step.contentType)}`);
      if (step.saveAs !== undefined) o.push(`saveAs: ${e.template(step.saveAs, s)}`);
      out(`await helpers.fetch(${e.template(step.url, s, true)}, { ${o.join(', ')} });`);
      return;
    }
    case 'downloadAll': {
      const n = e.id();
      const max = step.maxItems ?? DEFAULT_MAX_ITEMS;
      const inner: EmitScope = { ...s, indexVar: `$di${n}` };
      out('{');
      out(`  const $links${n} = ${s.scope}.locator(${lit(step.selector)});`);
      out(`  const $dn${n} = await $links${n}.count();`);
      out(`  if ($dn${n} > ${max}) helpers.log("downloadAll: " + $dn${n} + " elements match " + ${lit(JSON.stringify(step.selector))} + "; only the first ${max} are downloaded (maxItems)");`);
      out(`  for (let $di${n} = 0; $di${n} < Math.min($dn${n}, ${max}); $di${n}++) {`);
      out(`    await helpers.download(() => $links${n}.nth($di${n}).click()${step.saveAs === undefined ? '' : `, { saveAs: ${e.template(step.saveAs, inner)} }`});`);
      out('  }');
      out('}');
      return;
    }
    case 'forEach': {
      const n = e.id();
      const max = step.maxItems ?? DEFAULT_MAX_ITEMS;
      const hasFields = step.fields !== undefined && Object.keys(step.fields).length > 0;
      const inner: EmitScope = { scope: `$row${n}`, inLoop: true, ...(hasFields ? { rowVar: `$f${n}` } : s.rowVar ? { rowVar: s.rowVar } : {}) };
      out('{');
      out(`  const $rows${n} = ${s.scope}.locator(${lit(step.selector)});`);
      out(`  const $n${n} = await $rows${n}.count();`);
      out(`  if ($n${n} > ${max}) helpers.log("forEach: " + $n${n} + " elements match " + ${lit(JSON.stringify(step.selector))} + "; only the first ${max} are visited (maxItems)");`);
      out(`  for (let $i${n} = 0; $i${n} < Math.min($n${n}, ${max}); $i${n}++) {`);
      out(`    const $row${n} = $rows${n}.nth($i${n});`);
      if (hasFields) out(`    const $f${n} = (await helpers.extract(null, JSON.parse(${lit(JSON.stringify(step.fields))}), $row${n}))[0] ?? {};`);
      emitList(step.steps, inner, e, `${indent}    `, label);
      out('  }');
      out('}');
      return;
    }
    case 'paginate': {
      const n = e.id();
      const inner: EmitScope = { ...s, inLoop: true };
      out(`for (let $p${n} = 1; ; $p${n}++) {`);
      emitList(step.steps, inner, e, `${indent}  `, label);
      // Rows extracted so far are written after every page: a job stopped later (its time limit) keeps them.
      e.lines.push(`${FLUSH_MARK}${indent}  `);
      out(`  if ($p${n} >= ${step.maxPages}) break;`);
      out(`  const $next${n} = ${inScope(s, step.next)};`);
      out(`  if (!(await $next${n}.count()) || !(await $next${n}.isVisible()) || !(await $next${n}.isEnabled())) break;`);
      // The next page has come when the element clicked is gone: a navigation replaced the document, or the portal
      // redrew its pager. Marked before the click, so a pager that is redrawn identically still counts as gone.
      out(`  await $next${n}.evaluate((el, mark) => el.setAttribute("data-sri-paginate", mark), "${n}-" + $p${n});`);
      out(`  await $next${n}.click();`);
      out(`  await page.waitForSelector("[data-sri-paginate=\\"${n}-" + $p${n} + "\\"]", { state: "detached" });`);
      out('  await page.waitForLoadState();');
      out('}');
      return;
    }
    case 'ifExists': {
      const cond = step.timeoutMs
        ? `await ${inScope(s, step.selector)}.waitFor({ state: "attached", timeout: ${lit(step.timeoutMs)} }).then(() => true, () => false)`
        : `(await ${s.scope}.locator(${lit(step.selector)}).count()) > 0`;
      out(`if (${cond}) {`);
      emitList(step.steps, s, e, `${indent}  `, label);
      if (step.else !== undefined) {
        out('} else {');
        emitList(step.else, s, e, `${indent}  `, `${label}else.`);
      }
      out('}');
      return;
    }
  }
}

/**
 * Stands for `$flush();` in the emitted lines until the body knows whether it accumulates rows at all. No line of
 * user text can start with it: lit() escapes control characters.
 */
const FLUSH_MARK = '\u0000flush:';

/** Rows a forEach visits and links a downloadAll clicks when the step does not say (maxItems). */
export const DEFAULT_MAX_ITEMS = 200;

/**
 * Functions the body calls when it uses templates or accumulates extracted rows: fixed text, the same for every flow.
 * A metadata value must be a string, number or boolean; a missing one fails the job with a message naming it.
 */
const PRELUDE = {
  meta: '  const $meta = (name) => { const v = payload !== null && typeof payload === "object" && Object.hasOwn(payload, name) ? payload[name] : undefined; if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return String(v); throw new Error("The job\'s metadata has no value for " + name + " (the flow uses {{metadata." + name + "}}): pass it in the run\'s metadata."); };',
  field: '  const $field = (row, name) => { const v = row[name]; if (typeof v === "string") return v; throw new Error("The row has no " + name + " (forEach fields): its element was not found in the row."); };',
  append: '  const $acc = new Map();\n  const $append = (name, rows) => { $acc.set(name, ($acc.get(name) ?? []).concat(rows)); };\n  const $flush = () => { if ($acc.size) helpers.setResult(Object.fromEntries($acc)); };',
} as const;

/** The body of run(): the steps, and the prelude functions they use. */
function emitBody(steps: readonly Step[]): string {
  const e = new Emitter();
  const top: EmitScope = { scope: 'page', inLoop: false };
  steps.forEach((step, i) => {
    e.lines.push(`  // step ${i + 1}: ${step.type}`);
    emitStep(step, top, e, '  ', `${i + 1}.`);
  });
  const prelude = (['meta', 'field', 'append'] as const).filter((u) => e.uses.has(u)).map((u) => PRELUDE[u]);
  const appends = e.uses.has('append');
  const lines = e.lines.flatMap((l) => (!l.startsWith(FLUSH_MARK) ? [l] : appends ? [`${l.slice(FLUSH_MARK.length)}$flush();`] : []));
  if (!appends) return [...prelude, ...lines].join('\n');
  // Rows extracted in loops are kept in the script and written after each page and at the end, also when a later
  // step fails.
  return [...prelude, '  try {', ...lines.map((l) => `  ${l}`), '  } finally {', '    $flush();', '  }'].join('\n');
}

/** Compiles checked steps into the script text (deterministic: same steps, same text, same hash). */
export function compileSteps(rawSteps: unknown, provider: CompileProvider): { steps: Step[]; script: string } {
  const steps = parseSteps(rawSteps, provider);
  const script = [
    `// Generated by the SRI step compiler for provider ${lit(provider.id)}; do not edit: the hash and signature cover this text.`,
    'export default async function run({ page, payload, helpers, context }) {',
    emitBody(steps),
    '}',
    '',
  ].join('\n');
  return { steps, script };
}

/** Steps a login flow may use: it signs in and nothing else (no download or extracted data of its own). */
export const LOGIN_STEP_TYPES: readonly StepType[] = ['navigate', 'click', 'fill', 'waitFor', 'screenshot', 'select', 'ifExists'];

/**
 * Compiles a provider's login flow (docs/sessions.md) into a script of the same shape, under the header line the
 * worker checks (loginScriptHeader): the control plane hashes and signs it and publishes it in the catalogue.
 */
export function compileLoginSteps(rawSteps: unknown, provider: CompileProvider & { readonly name: string }): { steps: Step[]; script: string } {
  const steps = parseSteps(rawSteps, provider, LOGIN_STEP_TYPES);
  const script = [loginScriptHeader(provider.name), 'export default async function run({ page, payload, helpers, context }) {', emitBody(steps), '}', ''].join('\n');
  return { steps, script };
}

/**
 * The secret names a compiled script fills (`fill {secretRef}` steps), read back from the script text — which, unlike
 * the stored steps, is covered by the flow's hash and signature. Every step is one line (indented by its nesting),
 * every user value a JSON literal (no raw newline, no unescaped quote), and secret names are plain characters, so a
 * fillSecret line always ends with its real name whatever its selector holds.
 */
export function secretRefsOfScript(script: string): string[] {
  const names = new Set<string>();
  for (const m of script.matchAll(/^ +await helpers\.fillSecret\(".*", "([A-Za-z0-9_.-]{1,64})"\);$/gm)) names.add(m[1]!);
  return [...names];
}

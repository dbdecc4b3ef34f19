/**
 * The step compiler: a pure function from (steps, provider) to the script text of ARCHITECTURE.md "Script shape".
 * Every user value enters the script as a JSON string literal (`lit`), never by concatenation, so no selector,
 * URL or value can close a string and add code. Navigation targets must be http(s) URLs on the provider's hosts.
 */
import { SriError } from '../../shared/errors.ts';
import { urlHostAllowed } from '../../shared/host-match.ts';
import { loginScriptHeader } from '../../shared/provider-catalogue.ts';
import { describeZodError } from '../../shared/schemas.ts';
import { MAX_STEPS, STEP_SCHEMAS, STEP_TYPES, type Step, type StepType } from './steps.ts';

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

function flowInvalid(message: string, details?: unknown): SriError {
  return new SriError('FLOW_INVALID', message, { details });
}

function checkUrl(where: string, raw: string, provider: CompileProvider): void {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw flowInvalid(`${where}: "${raw.slice(0, 200)}" is not an absolute URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw flowInvalid(`${where}: only http and https URLs are allowed, got ${url.protocol}`);
  }
  if (url.username || url.password) throw flowInvalid(`${where}: URLs must not carry credentials; use a secretRef`);
  if (!hostAllowed(url, provider.allowedHosts)) {
    throw flowInvalid(`${where}: host ${url.host} is not in provider ${provider.id}'s allowedHosts (${provider.allowedHosts.join(', ')})`);
  }
}

/** Checks every step against its schema and the provider's hosts; the first problem is a FLOW_INVALID naming the step. */
export function parseSteps(raw: unknown, provider: CompileProvider): Step[] {
  if (!Array.isArray(raw)) throw flowInvalid('steps must be an array');
  if (raw.length === 0) throw flowInvalid('steps must not be empty');
  if (raw.length > MAX_STEPS) throw flowInvalid(`a flow has at most ${MAX_STEPS} steps, got ${raw.length}`);
  return raw.map((item, i) => {
    const where = `steps[${i}]`;
    const type = (item as { type?: unknown } | null)?.type;
    if (typeof type !== 'string' || !Object.hasOwn(STEP_SCHEMAS, type)) {
      throw flowInvalid(`${where}: unknown step type ${JSON.stringify(type ?? null)}; known types: ${STEP_TYPES.join(', ')}`);
    }
    const r = STEP_SCHEMAS[type as StepType].safeParse(item);
    if (!r.success) throw flowInvalid(`${where} (${type}): ${describeZodError(r.error)}`, { step: i, issues: r.error.issues });
    const step = r.data as Step;
    if (step.type === 'navigate') checkUrl(`${where} (navigate)`, step.url, provider);
    if (step.type === 'waitFor' && step.url !== undefined) checkUrl(`${where} (waitFor)`, step.url, provider);
    if (step.type === 'waitFor' && step.urlPrefix !== undefined) checkUrl(`${where} (waitFor)`, step.urlPrefix, provider);
    return step;
  });
}

function stepCode(step: Step): string {
  switch (step.type) {
    case 'navigate': return `await page.goto(${lit(step.url)});`;
    case 'click': return `await page.click(${lit(step.selector)});`;
    case 'fill':
      if (step.secretRef !== undefined) return `await helpers.fillSecret(${lit(step.selector)}, ${lit(step.secretRef)});`;
      // The worker computes the code from the connection's seed, outside the script (docs/security.md "TOTP seeds").
      if (step.totp !== undefined) return `await helpers.fillTotp(${lit(step.selector)}, ${lit(step.totp)});`;
      return `await page.fill(${lit(step.selector)}, ${lit(step.value)});`;
    case 'waitFor':
      if (step.selector !== undefined) return `await page.waitForSelector(${lit(step.selector)});`;
      // A predicate, not the URL itself: Playwright would read a string as a glob. The sandbox child runs it (never
      // the worker), and it compares the normalised URL literally.
      if (step.url !== undefined) return `await page.waitForURL((url) => url.href === ${lit(new URL(step.url).href)});`;
      if (step.urlPrefix !== undefined) return `await page.waitForURL((url) => url.href.startsWith(${lit(new URL(step.urlPrefix).href)}));`;
      return `await page.waitForTimeout(${lit(step.timeoutMs)});`;
    case 'screenshot': return `await helpers.screenshot({ fullPage: ${lit(step.fullPage ?? false)} });`;
    case 'download': return `await helpers.download(() => page.click(${lit(step.selector)}));`;
    // Fields go through JSON.parse so that every key is an own data property, whatever its name.
    case 'handoff': return `await helpers.handoff(${lit(step.reason)}${step.timeoutMs === undefined ? '' : `, { timeoutMs: ${lit(step.timeoutMs)} }`});`;
    case 'extract': return `helpers.setResult({ [${lit(step.name)}]: await helpers.extract(${lit(step.selector)}, JSON.parse(${lit(JSON.stringify(step.fields))})) });`;
  }
}

/** Compiles checked steps into the script text (deterministic: same steps, same text, same hash). */
export function compileSteps(rawSteps: unknown, provider: CompileProvider): { steps: Step[]; script: string } {
  const steps = parseSteps(rawSteps, provider);
  const body = steps.map((s, i) => `  // step ${i + 1}: ${s.type}\n  ${stepCode(s)}`).join('\n');
  const script = [
    `// Generated by the SRI step compiler for provider ${lit(provider.id)}; do not edit: the hash and signature cover this text.`,
    'export default async function run({ page, payload, helpers, context }) {',
    body,
    '}',
    '',
  ].join('\n');
  return { steps, script };
}

/** Steps a login flow may use: it signs in and nothing else (no download or extracted data of its own). */
export const LOGIN_STEP_TYPES: readonly StepType[] = ['navigate', 'click', 'fill', 'waitFor', 'screenshot'];

/**
 * Compiles a provider's login flow (docs/sessions.md) into a script of the same shape, under the header line the
 * worker checks (loginScriptHeader): the control plane hashes and signs it and publishes it in the catalogue.
 */
export function compileLoginSteps(rawSteps: unknown, provider: CompileProvider & { readonly name: string }): { steps: Step[]; script: string } {
  const steps = parseSteps(rawSteps, provider);
  steps.forEach((s, i) => {
    if (!LOGIN_STEP_TYPES.includes(s.type)) throw flowInvalid(`steps[${i}] (${s.type}): a login flow may use only ${LOGIN_STEP_TYPES.join(', ')} steps`);
  });
  const body = steps.map((s, i) => `  // step ${i + 1}: ${s.type}\n  ${stepCode(s)}`).join('\n');
  const script = [loginScriptHeader(provider.name), 'export default async function run({ page, payload, helpers, context }) {', body, '}', ''].join('\n');
  return { steps, script };
}

/**
 * The secret names a compiled script fills (`fill {secretRef}` steps), read back from the script text — which, unlike
 * the stored steps, is covered by the flow's hash and signature. Every step is one line, every user value a JSON
 * literal (no raw newline, no unescaped quote), and secret names are plain characters, so a fillSecret line always
 * ends with its real name whatever its selector holds.
 */
export function secretRefsOfScript(script: string): string[] {
  const names = new Set<string>();
  for (const m of script.matchAll(/^ {2}await helpers\.fillSecret\(".*", "([A-Za-z0-9_.-]{1,64})"\);$/gm)) names.add(m[1]!);
  return [...names];
}

/**
 * The flow step language (issue 2, docs/scripts.md): one zod schema per step type. The compiler turns a checked
 * list of steps into a script; anything it cannot check here is refused before a script exists.
 */
import { z } from 'zod';

const Selector = z.string().min(1, 'must not be empty').max(2000);
/** Absolute URL; the allowed-hosts and scheme checks happen in the compiler, which knows the provider. */
const UrlText = z.string().min(1, 'must not be empty').max(4096);
/** Names that become object keys in parsed data: no `__proto__`-style keys, nothing exotic. */
const FieldName = z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/, 'must start with a letter and use letters, digits, _ or - (max 64)');
const SecretName = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 characters of A-Z a-z 0-9 _ . -');

export const NavigateStep = z.strictObject({ type: z.literal('navigate'), url: UrlText });
export const ClickStep = z.strictObject({ type: z.literal('click'), selector: Selector });
export const FillStep = z.strictObject({
  type: z.literal('fill'),
  selector: Selector,
  value: z.string().max(10_000).optional(),
  secretRef: SecretName.optional(),
  /** A TOTP seed of the connection (POST /api/providers/{id}/connect {totp}): its current code is typed. */
  totp: SecretName.optional(),
}).refine((s) => [s.value, s.secretRef, s.totp].filter((v) => v !== undefined).length === 1, 'needs exactly one of value, secretRef or totp');
/**
 * The glob metacharacters of Playwright's `waitForURL(string)`. waitFor URLs are compared literally (the compiled
 * script passes a predicate, never a pattern), so a flow that still means a glob is refused rather than silently
 * waiting for a URL with a `*` in it; `?` goes too, because older Playwright read it as a wildcard.
 */
const GLOB_CHARS = /[*?[\]{}]/;
const LiteralUrl = UrlText.refine((u) => !GLOB_CHARS.test(u),
  'is compared literally and cannot hold * ? [ ] { } (no glob patterns); to wait for any URL under a path, use urlPrefix with the part before the first of them');
export const WaitForStep = z.strictObject({
  type: z.literal('waitFor'),
  selector: Selector.optional(),
  /** The page's URL equals this one (after URL normalisation: lower-case host, `/` path of a bare origin). */
  url: LiteralUrl.optional(),
  /** The page's URL starts with this one. */
  urlPrefix: LiteralUrl.optional(),
  timeoutMs: z.number().int().min(0).max(300_000).optional(),
}).refine((s) => [s.selector, s.url, s.urlPrefix, s.timeoutMs].filter((v) => v !== undefined).length === 1,
  'needs exactly one of selector, url, urlPrefix or timeoutMs');
export const ScreenshotStep = z.strictObject({ type: z.literal('screenshot'), fullPage: z.boolean().optional() });
export const DownloadStep = z.strictObject({ type: z.literal('download'), selector: Selector });
const ExtractField = z.union([
  Selector,
  z.strictObject({ selector: Selector.optional(), attribute: z.string().regex(/^[A-Za-z_:][A-Za-z0-9_.:-]{0,127}$/, 'must be an attribute name').optional() }),
]);
export const ExtractStep = z.strictObject({
  type: z.literal('extract'),
  name: FieldName,
  selector: Selector,
  fields: z.record(FieldName, ExtractField).refine((f) => Object.keys(f).length > 0 && Object.keys(f).length <= 100, 'needs 1 to 100 fields'),
});

/**
 * Hands the page to a person (the dashboard's live view): the job waits, status `waiting_for_user`, until they press
 * "Done" (the next step runs), "Give up" (HANDOFF_ABANDONED) or `timeoutMs` passes (HANDOFF_TIMEOUT).
 */
export const HandoffStep = z.strictObject({
  type: z.literal('handoff'),
  reason: z.string().trim().min(1, 'must not be empty').max(500),
  /** @default 300000 (5 min); the worker's WORKER_HANDOFF_MAX_MS bounds it */
  timeoutMs: z.number().int().min(1000).max(24 * 3600 * 1000).optional(),
});
export const STEP_SCHEMAS = {
  navigate: NavigateStep,
  click: ClickStep,
  fill: FillStep,
  waitFor: WaitForStep,
  screenshot: ScreenshotStep,
  download: DownloadStep,
  extract: ExtractStep,
  handoff: HandoffStep,
} as const;

export type StepType = keyof typeof STEP_SCHEMAS;
export type Step = { [K in StepType]: z.output<(typeof STEP_SCHEMAS)[K]> }[StepType];
export const STEP_TYPES = Object.keys(STEP_SCHEMAS) as StepType[];
export const MAX_STEPS = 200;

/** Any step, for the OpenAPI description. */
export const AnyStep = z.union([NavigateStep, ClickStep, FillStep, WaitForStep, ScreenshotStep, DownloadStep, ExtractStep, HandoffStep]);

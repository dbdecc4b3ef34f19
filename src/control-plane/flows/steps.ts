/**
 * The flow step language (issue 2, docs/scripts.md): one zod schema per step type. The compiler turns a checked
 * list of steps into a script; anything it cannot check here is refused before a script exists.
 */
import { z } from 'zod';

/** Steps in a flow, nested ones included. */
export const MAX_STEPS = 200;

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
export const DownloadStep = z.strictObject({
  type: z.literal('download'),
  selector: Selector,
  /** Name of the file (templates allowed); @default the name the portal gives */
  saveAs: z.string().min(1, 'must not be empty').max(300).optional(),
});
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
/**
 * Steps that hold steps (forEach, paginate, ifExists) list them as plain arrays here: the compiler (compile.ts) checks
 * nesting depth and the total number of steps before it parses a nested step, so a nesting bomb is refused without
 * recursing into it.
 */
const StepList = z.array(z.unknown()).min(1, 'must not be empty').max(MAX_STEPS)
  .meta({ description: 'Steps run in this step\'s scope (docs/scripts.md "Flow steps"); nested steps count towards the flow\'s 200.' });
/**
 * Text that may hold templates of the job's metadata (`{{metadata.month}}`) and, inside `forEach {fields}`, of the
 * row's fields (`{{row.claveAcceso}}`); compile.ts template.ts checks every `{{` and `}}`.
 */
const TemplateText = z.string().max(10_000);
/** A file name for evidence (templates allowed); the worker reduces it to a safe object name. */
const FileTemplate = z.string().min(1, 'must not be empty').max(300);

/**
 * Chooses an option of a <select> by its value or its visible label. `values` translates what the value's template
 * gives into the portal's option values (`{"factura": "1"}`: a job's metadata says `factura`, the portal's select
 * wants `1`); a value it does not list is used as it is.
 */
export const SelectStep = z.strictObject({
  type: z.literal('select'),
  selector: Selector,
  value: TemplateText.optional(),
  label: TemplateText.optional(),
  values: z.record(z.string().min(1).max(100), z.string().max(500))
    .refine((m) => Object.keys(m).length <= 100, 'at most 100 entries')
    .refine((m) => !Object.hasOwn(m, '__proto__'), '"__proto__" cannot be a key').optional(),
}).refine((s) => (s.value === undefined) !== (s.label === undefined), 'needs exactly one of value or label')
  .refine((s) => s.values === undefined || s.value !== undefined, 'values translates a value: give value, not label');

/** Runs `steps` once per element matching `selector`, with that element (the row) as their scope. */
export const ForEachStep = z.strictObject({
  type: z.literal('forEach'),
  selector: Selector,
  /** Values read from each row before its steps run, usable as `{{row.NAME}}` in them (as extract's fields). */
  fields: z.record(FieldName, ExtractField).refine((f) => Object.keys(f).length <= 20, 'at most 20 fields').optional(),
  /** @default 200 — rows beyond it are left (the log says so) */
  maxItems: z.number().int().min(1).max(1000).optional(),
  steps: StepList,
});

/** Runs `steps`, then clicks `next` while it exists, is visible and enabled, for at most `maxPages` pages. */
export const PaginateStep = z.strictObject({
  type: z.literal('paginate'),
  next: Selector,
  maxPages: z.number().int().min(1).max(500),
  steps: StepList,
});

/** Runs `steps` when `selector` matches something (after waiting up to `timeoutMs`), else `else`. */
export const IfExistsStep = z.strictObject({
  type: z.literal('ifExists'),
  selector: Selector,
  /** @default 0 — look once, do not wait */
  timeoutMs: z.number().int().min(0).max(60_000).optional(),
  steps: StepList,
  else: StepList.optional(),
});

/** Clicks every element matching `selector` and keeps each download as evidence. */
export const DownloadAllStep = z.strictObject({
  type: z.literal('downloadAll'),
  selector: Selector,
  /** Name of each file (templates, and `{{index}}`: 1, 2, …); @default the name the portal gives */
  saveAs: FileTemplate.optional(),
  /** @default 200 */
  maxItems: z.number().int().min(1).max(1000).optional(),
});

export const FETCH_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
/** An HTTP request made by the page (so through the job's egress policy, with the page's cookies for its origin). */
export const FetchStep = z.strictObject({
  type: z.literal('fetch'),
  url: UrlText,
  /** @default GET */
  method: z.enum(FETCH_METHODS).optional(),
  body: z.string().max(1024 * 1024).optional(),
  contentType: z.string().regex(/^[A-Za-z0-9!#$&^_.+-]{1,64}\/[A-Za-z0-9!#$&^_.+-]{1,64}(; ?[A-Za-z0-9_-]{1,32}=[A-Za-z0-9_.-]{1,64})?$/, 'must be a media type such as text/xml; charset=utf-8').optional(),
  /** Keeps the response body as evidence under this name (templates allowed). */
  saveAs: FileTemplate.optional(),
}).refine((s) => s.body === undefined || (s.method ?? 'GET') !== 'GET', 'a GET request has no body; use method POST');

export const STEP_SCHEMAS = {
  navigate: NavigateStep,
  click: ClickStep,
  fill: FillStep,
  waitFor: WaitForStep,
  screenshot: ScreenshotStep,
  download: DownloadStep,
  extract: ExtractStep,
  handoff: HandoffStep,
  select: SelectStep,
  forEach: ForEachStep,
  paginate: PaginateStep,
  ifExists: IfExistsStep,
  downloadAll: DownloadAllStep,
  fetch: FetchStep,
} as const;

export type StepType = keyof typeof STEP_SCHEMAS;
type Out<K extends StepType> = z.output<(typeof STEP_SCHEMAS)[K]>;
/** A checked step; the steps it holds are checked steps too. */
export type Step =
  | Out<'navigate' | 'click' | 'fill' | 'waitFor' | 'screenshot' | 'download' | 'extract' | 'handoff' | 'select' | 'downloadAll' | 'fetch'>
  | (Omit<Out<'forEach'>, 'steps'> & { steps: Step[] })
  | (Omit<Out<'paginate'>, 'steps'> & { steps: Step[] })
  | (Omit<Out<'ifExists'>, 'steps' | 'else'> & { steps: Step[]; else?: Step[] });
export const STEP_TYPES = Object.keys(STEP_SCHEMAS) as StepType[];
/** Steps that hold steps. */
export const CONTAINER_TYPES: readonly StepType[] = ['forEach', 'paginate', 'ifExists'];
/** Containers inside containers, at most (a forEach in a paginate is 2). */
export const MAX_NESTING = 4;

/** Any step, for the OpenAPI description. */
export const AnyStep = z.union([
  NavigateStep, ClickStep, FillStep, WaitForStep, ScreenshotStep, DownloadStep, ExtractStep, HandoffStep,
  SelectStep, ForEachStep, PaginateStep, IfExistsStep, DownloadAllStep, FetchStep,
]);

/**
 * The editor's model of a flow's steps: every field of every step type (docs/scripts.md "Steps"), kept as the
 * user typed it, and turned into the API's step objects on save. A step keeps the fields of the other types while
 * its type changes, so switching back loses nothing.
 */
import type { components } from '../../api/schema.d.ts';

/** A step as the API takes and gives it (generated from its OpenAPI document). */
export type ApiStep = components['schemas']['Step'];
export type StepType = ApiStep['type'];
export const STEP_TYPES: readonly StepType[] = ['navigate', 'click', 'fill', 'waitFor', 'screenshot', 'download', 'extract', 'handoff'];
export type WaitKind = 'selector' | 'url' | 'urlPrefix' | 'timeoutMs';

export interface EditorField { key: number; name: string; selector: string; attribute: string }

export interface EditorStep {
  key: number;
  type: StepType;
  url: string;
  selector: string;
  fillMode: 'value' | 'secret' | 'totp';
  value: string;
  secretRef: string;
  /** Name of a TOTP seed of the connection (fill {totp}). */
  totp: string;
  waitKind: WaitKind;
  waitValue: string;
  fullPage: boolean;
  name: string;
  fields: EditorField[];
  /** handoff: what the person is asked to do, and how long the job waits (ms; empty: the default, 5 min). */
  reason: string;
  handoffTimeoutMs: string;
  /**
   * A step of a type the editor has no form for (select, forEach, paginate, ifExists, downloadAll, fetch), loaded from
   * an existing flow: kept as it was, so a new version made from that flow keeps it.
   */
  raw?: ApiStep;
}

let counter = Date.now();
export const nextKey = () => ++counter;

export function newStep(type: StepType): EditorStep {
  return {
    key: nextKey(), type, url: '', selector: '', fillMode: 'value', value: '', secretRef: '', totp: '', waitKind: 'selector', waitValue: '',
    fullPage: false, name: '', fields: [{ key: nextKey(), name: '', selector: '', attribute: '' }], reason: '', handoffTimeoutMs: '',
  };
}

/** The API's step object (what POST /api/flows takes). */
export function toApiStep(s: EditorStep): ApiStep {
  switch (s.type) {
    case 'navigate': return { type: 'navigate', url: s.url.trim() };
    case 'click': return { type: 'click', selector: s.selector };
    case 'download': return { type: 'download', selector: s.selector };
    case 'fill':
      if (s.fillMode === 'secret') return { type: 'fill', selector: s.selector, secretRef: s.secretRef.trim() };
      if (s.fillMode === 'totp') return { type: 'fill', selector: s.selector, totp: s.totp.trim() };
      return { type: 'fill', selector: s.selector, value: s.value };
    case 'waitFor':
      switch (s.waitKind) {
        case 'timeoutMs': return { type: 'waitFor', timeoutMs: Number(s.waitValue) };
        case 'selector': return { type: 'waitFor', selector: s.waitValue };
        case 'url': return { type: 'waitFor', url: s.waitValue.trim() };
        case 'urlPrefix': return { type: 'waitFor', urlPrefix: s.waitValue.trim() };
      }
    case 'screenshot': return { type: 'screenshot', ...(s.fullPage ? { fullPage: true } : {}) };
    case 'handoff': return { type: 'handoff', reason: s.reason.trim(), ...(s.handoffTimeoutMs.trim() ? { timeoutMs: Number(s.handoffTimeoutMs) } : {}) };
    case 'extract': return {
      type: 'extract', name: s.name.trim(), selector: s.selector,
      fields: Object.fromEntries(s.fields.filter((f) => f.name.trim()).map((f) => [
        f.name.trim(), f.attribute.trim() ? { ...(f.selector ? { selector: f.selector } : {}), attribute: f.attribute.trim() } : f.selector,
      ])),
    };
    default:
      if (s.raw?.type === s.type) return s.raw;
      throw new Error(`the editor cannot build a ${s.type} step`);
  }
}

/** An existing flow's step back into the editor (starting a new version from it). */
export function fromApiStep(step: ApiStep): EditorStep {
  const s = newStep(step.type);
  switch (step.type) {
    case 'navigate':
      s.url = step.url;
      break;
    case 'click':
    case 'download':
      s.selector = step.selector;
      break;
    case 'fill':
      s.selector = step.selector;
      s.fillMode = step.secretRef !== undefined ? 'secret' : step.totp !== undefined ? 'totp' : 'value';
      s.value = step.value ?? '';
      s.secretRef = step.secretRef ?? '';
      s.totp = step.totp ?? '';
      break;
    case 'waitFor': {
      const kind = (['selector', 'url', 'urlPrefix', 'timeoutMs'] as const).find((k) => step[k] !== undefined) ?? 'selector';
      s.waitKind = kind;
      s.waitValue = String(step[kind] ?? '');
      break;
    }
    case 'screenshot':
      s.fullPage = step.fullPage === true;
      break;
    case 'handoff':
      s.reason = step.reason;
      s.handoffTimeoutMs = step.timeoutMs === undefined ? '' : String(step.timeoutMs);
      break;
    case 'extract':
      s.name = step.name;
      s.selector = step.selector;
      s.fields = Object.entries(step.fields).map(([name, f]) => ({
        key: nextKey(), name, selector: typeof f === 'string' ? f : f.selector ?? '', attribute: typeof f === 'string' ? '' : f.attribute ?? '',
      }));
      break;
    default:
      s.raw = step;
      break;
  }
  return s;
}

/** The URLs of a step that the provider's allowedHosts must cover. */
export function stepUrls(s: EditorStep): string[] {
  if (s.type === 'navigate') return s.url.trim() ? [s.url.trim()] : [];
  if (s.type === 'waitFor' && (s.waitKind === 'url' || s.waitKind === 'urlPrefix')) return s.waitValue.trim() ? [s.waitValue.trim()] : [];
  return [];
}

/** The step index a FLOW_INVALID answer names (`details.step`, else "steps[3]…" in its message). */
export function failingStep(details: unknown, message: string): number | undefined {
  const d = details as { step?: unknown } | undefined;
  if (typeof d?.step === 'number') return d.step;
  const m = /^steps\[(\d+)\]/.exec(message);
  return m ? Number(m[1]) : undefined;
}

interface Issue { path?: unknown; message?: unknown; issues?: unknown }

/** `fields.1pdf: must start with a letter…` for each zod issue of a FLOW_INVALID answer (nested key issues included). */
function issueLines(issues: unknown, prefix: string[] = []): string[] {
  if (!Array.isArray(issues)) return [];
  return issues.flatMap((raw) => {
    const i = raw as Issue;
    const path = [...prefix, ...(Array.isArray(i.path) ? i.path.map(String) : [])];
    const nested = issueLines(i.issues, path);
    if (nested.length) return nested;
    return typeof i.message === 'string' ? [`${path.length ? `${path.join('.')}: ` : ''}${i.message}`] : [];
  });
}

/**
 * Where the API refused the flow and why: FLOW_INVALID (the compiler names the step) or VALIDATION_FAILED with a
 * field under `steps.N`. Undefined when the refusal is about no step.
 */
export function stepProblem(code: string, message: string, details: unknown): { index: number; message: string } | undefined {
  if (code === 'FLOW_INVALID') {
    const index = failingStep(details, message);
    if (index === undefined) return undefined;
    const lines = issueLines((details as { issues?: unknown } | undefined)?.issues);
    return { index, message: lines.length ? lines.join('; ') : message.replace(/^steps\[\d+\]\s*(\([^)]*\))?:\s*/, '') };
  }
  if (code === 'VALIDATION_FAILED' && Array.isArray(details)) {
    for (const d of details as { field?: unknown; message?: unknown }[]) {
      const m = typeof d.field === 'string' ? /^steps\.(\d+)(?:\.(.+))?$/.exec(d.field) : null;
      if (m) return { index: Number(m[1]), message: `${m[2] ? `${m[2]}: ` : ''}${String(d.message)}` };
    }
  }
  return undefined;
}

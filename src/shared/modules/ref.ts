/**
 * A module reference as a job names it (`name@1.2.3`, `name@^1`, `name@latest`; docs/modules.md). Kept apart from
 * manifest.ts so the job message schema (schemas.ts) can validate it without an import cycle.
 */
import semver from 'semver';
import { z } from 'zod';

/** A module's name: it is a path segment of its S3 keys, so lower-case letters, digits and dashes only. */
export const ModuleName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'must be 1-64 characters of a-z 0-9 -, starting with a letter or digit');

export interface ParsedModuleRef {
  readonly name: string;
  /** An exact version, a semver range, or `latest`. */
  readonly range: string;
}

/** The reference's name and range, or a message saying what is wrong with it. */
export function parseModuleRef(text: string): ParsedModuleRef | { error: string } {
  const at = text.lastIndexOf('@');
  const name = at > 0 ? text.slice(0, at) : text;
  const range = at > 0 ? text.slice(at + 1).trim() : '';
  if (!ModuleName.safeParse(name).success) return { error: 'must be name@version or name@range, with a name of a-z 0-9 - (e.g. "invoices@^1")' };
  if (range !== 'latest' && (range === '' || range.length > 64 || semver.validRange(range) === null)) {
    return { error: `"${range.slice(0, 64)}" is not a version or semver range (e.g. 1.2.3, ^1, ~1.2, latest)` };
  }
  return { name, range };
}

/** `module` of a job message: a valid reference (the worker resolves its range). */
export const ModuleRefText = z.string().max(140).superRefine((text, ctx) => {
  const r = parseModuleRef(text);
  if ('error' in r) ctx.addIssue({ code: 'custom', message: r.error });
});

/**
 * The text a module job's `scriptHash` and `signature` cover (ARCHITECTURE.md "Script integrity"): the control plane
 * signs the reference as it signs a script, so whoever can push to Redis cannot swap the module a job runs, and the
 * job envelope (which covers scriptHash) binds the reference to the job's ids. The bundle itself carries its own
 * signature (signature.ts).
 */
export function moduleRefScript(ref: string): string {
  return `sri-module:${ref}`;
}

/** The reference a flow's stored script names (a flow made with `module`), or undefined for a compiled script. */
export function moduleRefOfScript(script: string): string | undefined {
  if (!script.startsWith('sri-module:')) return undefined;
  const ref = script.slice('sri-module:'.length);
  return ModuleRefText.safeParse(ref).success ? ref : undefined;
}

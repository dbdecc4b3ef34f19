/**
 * A module bundle's manifest and references (docs/modules.md): what `sri module publish DIR` reads from
 * `DIR/manifest.json`, what the control plane stores next to the bundle's files, and what a job names in `module`.
 * Both planes validate with these schemas.
 */
import semver from 'semver';
import { z } from 'zod';
import { Hostname, Id } from '../schemas.ts';
import { ModuleName } from './ref.ts';

export { ModuleName };

/** An exact version: semver without build metadata (a `+` has no place in an S3 key, and semver ignores it anyway). */
export const ModuleVersion = z.string().max(64).refine((v) => semver.valid(v) === v && !v.includes('+'),
  'must be an exact semver version such as 1.2.3 or 1.2.3-beta.1 (no build metadata)');

/** A file of the bundle: a flat `.js` name, no folders (each is an S3 key under the version's prefix). */
export const ModuleFileName = z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.js$/, 'must be a flat file name ending in .js (A-Z a-z 0-9 _ . -)')
  .refine((f) => !f.includes('..'), 'must not contain ..');

/** Largest bundle (all files, bytes of UTF-8): the same bound as an inline script. */
export const MAX_MODULE_BYTES = 1024 * 1024;
export const MAX_MODULE_FILES = 32;

export const ModuleManifest = z.object({
  name: ModuleName,
  version: ModuleVersion,
  description: z.string().max(500).optional(),
  /** The file whose `export default` is the job's entry point. */
  entry: ModuleFileName,
  /**
   * Every file of the bundle in load order; the entry must be one of them and comes last when run. Absent: the
   * entry alone. Files other than the entry share its scope (as classic scripts do) and may not import or export.
   */
  files: z.array(ModuleFileName).min(1).max(MAX_MODULE_FILES).optional(),
  /** The hosts the module's pages need (informational for the worker; the job's own allowedHosts still bound it). */
  allowedHosts: z.array(Hostname).max(100).default([]),
  /** The secrets (fillSecret names) the module uses; documented so an operator knows what an organisation must set. */
  secrets: z.array(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be a secret name (A-Z a-z 0-9 _ . -)')).max(50).default([]),
  /**
   * Who may run it. Absent: every organisation. `orgs`: these organisations. `plans`: organisations on these plans
   * (the platform has no plans yet, so a plan grants nothing today; docs/modules.md).
   */
  allow: z.object({
    orgs: z.array(Id).max(1000).optional(),
    plans: z.array(z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/)).max(50).optional(),
  }).strict().optional(),
}).strict().superRefine((m, ctx) => {
  const files = m.files ?? [m.entry];
  if (!files.includes(m.entry)) ctx.addIssue({ code: 'custom', path: ['files'], message: `must include the entry "${m.entry}"` });
  if (new Set(files).size !== files.length) ctx.addIssue({ code: 'custom', path: ['files'], message: 'names a file twice' });
  if (files.includes('manifest.json')) ctx.addIssue({ code: 'custom', path: ['files'], message: 'must not name manifest.json' });
});
export type ModuleManifest = z.infer<typeof ModuleManifest>;

/** The bundle's files in load order, the entry last. */
export function moduleFiles(m: ModuleManifest): string[] {
  const files = m.files ?? [m.entry];
  return [...files.filter((f) => f !== m.entry), m.entry];
}

/**
 * The highest of `versions` that `range` accepts; prereleases only when the range names one (semver's rule), and
 * `latest` is the highest stable version. Undefined when none does.
 */
export function resolveVersion(range: string, versions: readonly string[]): string | undefined {
  const valid = versions.filter((v) => semver.valid(v) === v);
  return semver.maxSatisfying(valid, range === 'latest' ? '*' : range) ?? undefined;
}

/** Whether the manifest lets organisation `orgId` (on `plan`, when it has one) run the module. */
export function moduleAllows(m: ModuleManifest, orgId: string, plan?: string): boolean {
  if (!m.allow) return true;
  if (m.allow.orgs?.includes(orgId)) return true;
  return plan !== undefined && (m.allow.plans?.includes(plan) ?? false);
}

/** S3 layout of the scripts bucket (ARCHITECTURE.md "S3 layout"): `modules/{name}/{version}/…`. */
export const moduleKeys = {
  namesPrefix: 'modules/',
  versionsPrefix: (name: string) => `modules/${name}/`,
  prefix: (name: string, version: string) => `modules/${name}/${version}/`,
  file: (name: string, version: string, file: string) => `modules/${name}/${version}/${file}`,
  manifest: (name: string, version: string) => `modules/${name}/${version}/manifest.json`,
  checksums: (name: string, version: string) => `modules/${name}/${version}/SHA256SUMS`,
  signature: (name: string, version: string) => `modules/${name}/${version}/signature.json`,
} as const;

/**
 * Module bundles (docs/modules.md). Publishing is the platform operator's act (OPERATOR_TOKEN): a module runs on
 * every organisation's jobs unless its manifest restricts it (allow.orgs, allow.plans), so no organisation's admin
 * may publish one. An organisation's admins list the modules their organisation may use.
 *
 * The API signs the bundle with the module signing key ring (MODULE_SIGNING_KEYS) and stores it in the scripts
 * bucket under modules/{name}/{version}/; S3 is the record — no table — and workers read the same listing.
 */
import type { FastifyInstance } from 'fastify';
import semver from 'semver';
import { z } from 'zod';
import { SriError } from '../../../shared/errors.ts';
import { MAX_MODULE_BYTES, ModuleFileName, ModuleManifest, moduleAllows, moduleFiles } from '../../../shared/modules/manifest.ts';
import { buildSignedBundle, moduleSigningKeyring, textSha256 } from '../../../shared/modules/signature.ts';
import { listPublished, readManifest, storeBundle } from '../../../shared/modules/store.ts';
import { describeZodError } from '../../../shared/schemas.ts';
import { adminOnly } from '../admin-guard.ts';
import { authOf } from '../auth.ts';
import type { ApiContext } from '../../context.ts';
import { operatorOnly } from '../operator-guard.ts';
import { endpoint, json, type ContractTypeProvider } from '../openapi.ts';

/** A bundle's files travel as UTF-8 text in JSON: the body may be larger than the files by escaping. */
export const MODULE_BODY_LIMIT_BYTES = 3 * MAX_MODULE_BYTES;

export const PublishModuleBody = z.strictObject({
  /** manifest.json as read from the bundle's folder; validated here (not by the route schema) so MODULE_INVALID names each problem. */
  manifest: z.record(z.string(), z.unknown()),
  /** File name → its text (UTF-8), exactly the files the manifest lists. */
  files: z.record(z.string(), z.string()),
});

export const PublishedModule = z.object({
  name: z.string(),
  version: z.string(),
  entry: z.string(),
  files: z.array(z.string()),
  allowedHosts: z.array(z.string()),
  secrets: z.array(z.string()),
  allow: z.object({ orgs: z.array(z.string()).optional(), plans: z.array(z.string()).optional() }).optional(),
  description: z.string().optional(),
});

export const ModuleSummary = z.object({
  name: z.string(),
  versions: z.array(z.string()).describe('Published versions, highest first.'),
  latest: PublishedModule.optional().describe('The highest version\'s manifest.'),
});

function summaryOf(m: ModuleManifest): z.infer<typeof PublishedModule> {
  return {
    name: m.name, version: m.version, entry: m.entry, files: moduleFiles(m), allowedHosts: m.allowedHosts, secrets: m.secrets,
    ...(m.allow ? { allow: m.allow } : {}), ...(m.description !== undefined ? { description: m.description } : {}),
  };
}

/** Refuses a bundle whose files are not exactly the manifest's, too large, or using import/export outside the entry. */
function checkFiles(manifest: ModuleManifest, files: Record<string, string>): Map<string, Buffer> {
  const problems: string[] = [];
  const listed = moduleFiles(manifest);
  for (const f of Object.keys(files)) {
    if (!ModuleFileName.safeParse(f).success) problems.push(`files.${f.slice(0, 100)}: not a flat .js file name`);
    else if (!listed.includes(f)) problems.push(`files.${f}: not listed in the manifest (entry or files)`);
  }
  for (const f of listed) if (files[f] === undefined) problems.push(`files.${f}: listed in the manifest but not sent`);
  const bytes = Object.values(files).reduce((n, t) => n + Buffer.byteLength(t, 'utf8'), 0);
  if (bytes > MAX_MODULE_BYTES) problems.push(`files: ${bytes} bytes, over the ${MAX_MODULE_BYTES} a bundle may have`);
  for (const f of listed) {
    const text = files[f];
    if (text === undefined || f === manifest.entry) continue;
    if (/^\s*(import|export)\b/m.test(text)) problems.push(`files.${f}: only the entry (${manifest.entry}) may export; other files share its scope and may not import or export`);
  }
  if (problems.length) throw new SriError('MODULE_INVALID', `The bundle cannot be published: ${problems.join('; ')}.`, { details: problems });
  return new Map(listed.map((f) => [f, Buffer.from(files[f]!, 'utf8')]));
}

export function moduleRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ContractTypeProvider>();
  const bucket = ctx.config.s3ScriptsBucket;
  const keyring = moduleSigningKeyring(ctx.config);

  const listAll = async () => {
    const published = await listPublished(ctx.blobStore, bucket);
    return Promise.all([...published].sort(([a], [b]) => a.localeCompare(b)).map(async ([name, versions]) => {
      // semver's order, highest first (listPublished keeps only names of signed versions; a stray name sorts last).
      const sorted = [...versions.filter((v) => semver.valid(v)).sort(semver.rcompare), ...versions.filter((v) => !semver.valid(v))];
      const latest = sorted[0] === undefined ? undefined : await readManifest(ctx.blobStore, bucket, name, sorted[0]);
      return { name, versions: sorted, ...(latest ? { latest: summaryOf(latest) } : {}), manifest: latest };
    }));
  };

  r.route({
    ...endpoint('POST', '/api/operator/modules', {
      operationId: 'publishModule', tag: 'operator', access: 'operator', body: PublishModuleBody,
      summary: 'Publish a module version: validate its manifest and files, sign them and store the bundle (operator only).',
      description: 'What `sri module publish DIR` sends. A published version is never replaced; workers use it for the next jobs whose range it satisfies, without a restart (docs/modules.md).',
      responses: { 201: json('Published.', z.object({ module: PublishedModule, checksum: z.string().describe('SHA-256 of the bundle\'s SHA256SUMS.'), keyId: z.string() })) },
      errors: ['MODULE_INVALID', 'MODULE_VERSION_EXISTS'],
    }),
    bodyLimit: MODULE_BODY_LIMIT_BYTES,
    preValidation: operatorOnly(ctx),
    handler: async (req, reply) => {
      const parsed = ModuleManifest.safeParse(req.body.manifest);
      if (!parsed.success) {
        throw new SriError('MODULE_INVALID', `manifest.json is not valid: ${describeZodError(parsed.error)}`, { details: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) });
      }
      const manifest = parsed.data;
      const bundle = buildSignedBundle(keyring, manifest, checkFiles(manifest, req.body.files));
      if (!await storeBundle(ctx.blobStore, bucket, bundle)) {
        throw new SriError('MODULE_VERSION_EXISTS', `${manifest.name}@${manifest.version} is already published; raise the version in manifest.json.`);
      }
      ctx.logger.info({ module: `${manifest.name}@${manifest.version}`, keyId: keyring.primary }, 'module published');
      return reply.status(201).send({
        module: summaryOf(manifest), checksum: textSha256(bundle.objects.get('SHA256SUMS')!.toString('utf8')), keyId: keyring.primary,
      });
    },
  });

  r.route({
    ...endpoint('GET', '/api/operator/modules', {
      operationId: 'listModules', tag: 'operator', access: 'operator',
      summary: 'Every published module with its versions and the manifest of the highest (operator only).',
      responses: { 200: json('The modules.', z.object({ modules: z.array(ModuleSummary) })) },
    }),
    preValidation: operatorOnly(ctx),
    handler: async () => ({ modules: (await listAll()).map(({ manifest: _m, ...rest }) => rest) }),
  });

  r.route({
    ...endpoint('GET', '/api/admin/modules', {
      operationId: 'listOrgModules', tag: 'admin', access: 'admin',
      summary: 'The published modules your organisation may use (its highest version allows it), with their versions.',
      responses: { 200: json('The modules.', z.object({ modules: z.array(ModuleSummary) })) },
    }),
    preValidation: adminOnly(ctx),
    handler: async (req) => {
      const { orgId } = authOf(req);
      return { modules: (await listAll()).filter((m) => m.manifest && moduleAllows(m.manifest, orgId)).map(({ manifest: _m, ...rest }) => rest) };
    },
  });
}

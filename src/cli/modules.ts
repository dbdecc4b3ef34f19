/**
 * `sri module publish DIR | list`: module bundles (docs/modules.md) through the API's operator endpoints, with
 * OPERATOR_TOKEN (or --operator-token). `publish` reads DIR/manifest.json and the files it lists, checks the
 * manifest here first (the same schema the API applies), and sends them; the API signs and stores the bundle.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { SriError } from '../shared/errors.ts';
import { ModuleManifest, moduleFiles } from '../shared/modules/manifest.ts';
import { describeZodError } from '../shared/schemas.ts';
import { callApi, type OperatorOptions } from './enrol.ts';
import { table, type CliIo } from './queue-ops.ts';

type Env = Record<string, string | undefined>;

/** manifest.json of DIR and the text of every file it lists; MODULE_INVALID naming what is wrong. */
export async function readBundleDir(dir: string): Promise<{ manifest: ModuleManifest; files: Record<string, string> }> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
  } catch (e) {
    throw new SriError('MODULE_INVALID', `cannot read ${join(dir, 'manifest.json')}: ${(e as Error).message}`);
  }
  const parsed = ModuleManifest.safeParse(json);
  if (!parsed.success) throw new SriError('MODULE_INVALID', `${join(dir, 'manifest.json')} is not valid: ${describeZodError(parsed.error)}`);
  const files: Record<string, string> = {};
  for (const f of moduleFiles(parsed.data)) {
    try {
      files[f] = await readFile(join(dir, f), 'utf8');
    } catch (e) {
      throw new SriError('MODULE_INVALID', `the manifest lists ${f}, which cannot be read: ${(e as Error).message}`);
    }
  }
  return { manifest: parsed.data, files };
}

export function addModuleCommand(program: Command, env: Env, io: CliIo = { out: (t) => console.log(t) }): void {
  const mod = program.command('module')
    .description('publish and list module bundles (the platform operator\'s; through the API, with OPERATOR_TOKEN)');
  const common = (c: Command) => c
    .option('--api <url>', 'API base URL', `http://127.0.0.1:${env['PORT'] || 3000}`)
    .option('--operator-token <token>', 'the API\'s OPERATOR_TOKEN; default: $OPERATOR_TOKEN')
    .option('--json', 'print the API\'s JSON answer');

  common(mod.command('publish'))
    .description('sign and store the bundle in DIR (manifest.json and the files it lists) as name@version')
    .argument('<dir>', 'the bundle\'s folder')
    .action(async (dir: string, o: OperatorOptions) => {
      const { manifest, files } = await readBundleDir(dir);
      // Sent as read (not the parsed manifest), so the API judges exactly what the folder holds.
      const raw = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
      const r = await callApi(env, o, 'POST', '/api/operator/modules', { manifest: raw, files });
      if (o.json) return io.out(JSON.stringify(r, null, 2));
      io.out(`published ${manifest.name}@${manifest.version} (${Object.keys(files).length} file(s), signed with key ${r.keyId}, checksums ${String(r.checksum).slice(0, 12)}…)`);
      io.out(`jobs naming module "${manifest.name}@${manifest.version}" or a range it satisfies run it from their next start.`);
    });

  common(mod.command('list'))
    .description('published modules, their versions and who may use the highest')
    .action(async (o: OperatorOptions) => {
      const r = await callApi(env, o, 'GET', '/api/operator/modules') as {
        modules: { name: string; versions: string[]; latest?: { allow?: { orgs?: string[]; plans?: string[] }; entry: string } }[];
      };
      if (o.json) return io.out(JSON.stringify(r, null, 2));
      if (!r.modules.length) return io.out('no modules');
      io.out(table(['MODULE', 'LATEST', 'VERSIONS', 'ALLOWED'], r.modules.map((m) => [
        m.name, m.versions[0] ?? '', m.versions.join(', '),
        !m.latest?.allow ? 'every organisation' : [...(m.latest.allow.orgs ?? []).map((x) => `org ${x}`), ...(m.latest.allow.plans ?? []).map((x) => `plan ${x}`)].join(', ') || 'nobody',
      ])));
    });
}

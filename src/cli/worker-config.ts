/**
 * `sri config get | set FILE | set key=value…`: the workers' live configuration (docs/configuration.md "Live
 * configuration") through the API's /api/operator/worker-config, with OPERATOR_TOKEN or --operator-token.
 *
 * - `set FILE`: the file holds the configuration (`{"global":…,"providers":…}`) or what `get --json` printed; the
 *   version checked is the file's `version` (so an edit of a stale copy is refused, WORKER_CONFIG_CONFLICT), else
 *   --expect-version, else the one read just before.
 * - `set key=value…`: dotted paths into the configuration (`global.maxJobs=2`, `providers.sri.retry.maxAttempts=5`);
 *   a value is JSON (numbers, true/false), `null` or nothing removes the setting. It reads, changes and writes back;
 *   when someone wrote in between it reads again and applies the same change (at most 3 times).
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { SriError } from '../shared/errors.ts';
import { ApiClient } from './api-client.ts';
import type { CliIo } from './queue-ops.ts';

type Env = Record<string, string | undefined>;
type Json = Record<string, unknown>;

interface ConfigView {
  version: number; config: Json; updatedAt: string | null; updatedBy: string | null; problem?: string;
  history: { version: number; at: string; by: string; changed: string[] }[];
}

interface Options { api: string; operatorToken?: string; json?: boolean; expectVersion?: string }

const PATH = '/api/operator/worker-config';
const SEGMENT = /^[A-Za-z0-9_-]+$/;

/** `a.b.c=value` applied to a copy of `config`; `null` or an empty value removes the leaf (and emptied parents). */
export function applyAssignment(config: Json, assignment: string): Json {
  const eq = assignment.indexOf('=');
  const path = assignment.slice(0, eq).split('.');
  if (eq < 1 || path.some((p) => !SEGMENT.test(p))) {
    throw new SriError('VALIDATION_FAILED', `"${assignment}" is not key=value with a dotted key (global.maxJobs=2, providers.sri.retry.maxAttempts=5)`);
  }
  const text = assignment.slice(eq + 1).trim();
  let value: unknown;
  try {
    value = text === '' ? null : JSON.parse(text);
  } catch {
    value = text;
  }
  const out = structuredClone(config);
  const parents: Json[] = [];
  let node: Json = out;
  for (const p of path.slice(0, -1)) {
    const next = node[p];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[p] = {};
    parents.push(node);
    node = node[p] as Json;
  }
  const leaf = path[path.length - 1]!;
  if (value === null) {
    delete node[leaf];
    // An override left empty goes too (providers.sri = {} says nothing).
    for (let i = parents.length - 1; i >= 0; i--) {
      const key = path[i]!;
      const child = parents[i]![key] as Json;
      if (Object.keys(child).length === 0 && !(i === 0 && (key === 'global' || key === 'providers'))) delete parents[i]![key];
    }
  } else {
    node[leaf] = value;
  }
  return out;
}

function show(v: ConfigView): string {
  const lines = [
    `version ${v.version}${v.updatedAt ? `, changed ${v.updatedAt} by ${v.updatedBy ?? '?'}` : ' (never written: the workers\' environment values apply)'}`,
  ];
  if (v.problem) lines.push(`INVALID stored document, ignored by the workers (they keep their last good one): ${v.problem}`);
  lines.push(JSON.stringify(v.config, null, 2));
  if (v.history.length) {
    lines.push('recent changes:');
    for (const h of v.history.slice(0, 5)) lines.push(`  v${h.version} ${h.at} ${h.by}: ${h.changed.join(', ') || '(nothing)'}`);
  }
  return lines.join('\n');
}

export function addConfigCommand(program: Command, env: Env, io: CliIo = { out: (t) => console.log(t) }): void {
  const config = program.command('config')
    .description('the workers\' live configuration: jobs at once, retries, breaker threshold, per provider (the platform operator\'s; through the API, with OPERATOR_TOKEN)');
  const common = (c: Command) => c
    .option('--api <url>', 'API base URL', `http://127.0.0.1:${env['PORT'] || 3000}`)
    .option('--operator-token <token>', 'the API\'s OPERATOR_TOKEN; default: $OPERATOR_TOKEN')
    .option('--json', 'print the API\'s JSON answer');
  const client = (o: Options) => {
    const token = o.operatorToken ?? env['OPERATOR_TOKEN'];
    if (!token) throw new SriError('OPERATOR_ONLY', 'give the operator token with --operator-token or OPERATOR_TOKEN');
    const c = new ApiClient(o.api, { retryDeadlineMs: 15_000 });
    c.token = token;
    return c;
  };
  const print = (o: Options, v: ConfigView) => io.out(o.json ? JSON.stringify(v, null, 2) : show(v));

  common(config.command('get'))
    .description('print the configuration in force, its version and its latest changes')
    .action(async (o: Options) => {
      print(o, (await client(o).request<ConfigView>('GET', PATH)).body);
    });

  common(config.command('set'))
    .argument('<file-or-assignments...>', 'a JSON file, or key=value pairs (global.maxJobs=2 providers.sri.retry.maxAttempts=5; key= removes it)')
    .option('--expect-version <n>', 'with a file without "version": the version it was made from (refused if the stored one differs)')
    .description('replace the configuration with a file, or change single settings; running workers apply it within seconds')
    .action(async (args: string[], o: Options) => {
      const api = client(o);
      const first = args[0]!;
      if (args.length === 1 && !first.includes('=') || existsSync(first)) {
        if (args.length > 1) throw new SriError('VALIDATION_FAILED', 'give one file, or key=value pairs, not both');
        let doc: Json;
        try {
          doc = JSON.parse(readFileSync(first, 'utf8')) as Json;
        } catch (e) {
          throw new SriError('VALIDATION_FAILED', `${first}: not a readable JSON file (${(e as Error).message})`);
        }
        // What `get --json` printed carries its version and the configuration under `config`.
        const body = typeof doc['config'] === 'object' && doc['config'] !== null ? doc['config'] as Json : doc;
        const version = typeof doc['version'] === 'number' ? doc['version']
          : o.expectVersion !== undefined ? Number(o.expectVersion) : (await api.request<ConfigView>('GET', PATH)).body.version;
        print(o, (await api.request<ConfigView>('PUT', PATH, { version, config: body })).body);
        return;
      }
      for (let attempt = 1; ; attempt++) {
        const current = (await api.request<ConfigView>('GET', PATH)).body;
        const next = args.reduce(applyAssignment, current.config);
        try {
          print(o, (await api.request<ConfigView>('PUT', PATH, { version: current.version, config: next })).body);
          return;
        } catch (e) {
          // Someone wrote between our read and our write: the same change applies to what is there now.
          if (!(e instanceof SriError && e.code === 'WORKER_CONFIG_CONFLICT') || attempt >= 3) throw e;
        }
      }
    });
}

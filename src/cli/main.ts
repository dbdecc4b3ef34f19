/**
 * The one CLI: `sri up | api | worker | migrate | demo`, `sri logs` (a job's log through the API, logs.ts), the
 * operator commands on the queue (`sri dlq | cancel | quota`, queue-ops.ts), `sri workers` (workers.ts) and
 * `sri enrol` (worker enrolment through the API, enrol.ts), `sri module` (module bundles, modules.ts), `sri ops` and `sri ops-worker` (system updates, ops.ts), `sri config` (the workers' live configuration, worker-config.ts). Each command imports what it runs only when chosen, so
 * `sri demo` (an HTTP client) never loads PGlite or Chromium.
 *
 * Exit codes (src/cli/options.ts): 0 success; 1 a runtime failure — an expected one (SriError) prints one line
 * `error CODE: message` on stderr, only unexpected errors show a stack trace; 2 a usage error (unknown command or
 * option, missing argument, invalid option value), reported by commander as `error: …` and a hint.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { isSriError } from '../shared/errors.ts';
import { readStoredSecrets } from '../embedded/secrets.ts';
import { addEnrolCommand } from './enrol.ts';
import { addModuleCommand } from './modules.ts';
import { addLogsCommand } from './logs.ts';
import { addParseCommand } from './parse.ts';
import { addOpsCommands } from './ops.ts';
import { addConfigCommand } from './worker-config.ts';
import { cliVersion, EXIT_USAGE, integerOption } from './options.ts';
import { addQueueCommands, type CliIo } from './queue-ops.ts';
import { addSecretsCommand } from './secrets.ts';
import { addWorkersCommand } from './workers.ts';

type Env = Record<string, string | undefined>;

/** Adds the secrets `sri up` stored under DATA_DIR when the environment has none, so processes can join its stack. */
function withStoredSecrets(env: Env, names: ReadonlyArray<'SCRIPT_SIGNING_SECRET' | 'JWT_SECRET' | 'SECRETS_KEYS'>): Env {
  const stored = readStoredSecrets(env['DATA_DIR'] || '.data');
  if (!stored) return env;
  const out = { ...env };
  if (names.includes('SCRIPT_SIGNING_SECRET') && !out['SCRIPT_SIGNING_SECRET']) out['SCRIPT_SIGNING_SECRET'] = stored.scriptSigningSecret;
  if (names.includes('JWT_SECRET') && !out['JWT_SECRET']) out['JWT_SECRET'] = stored.jwtSecret;
  if (names.includes('SECRETS_KEYS') && !out['SECRETS_KEYS'] && stored.secretsKeys) out['SECRETS_KEYS'] = stored.secretsKeys;
  return out;
}

/** Longest `sri demo --timeout`: a day. */
const MAX_DEMO_TIMEOUT_MS = 86_400_000;

/**
 * The `sri` program. Usage errors throw a CommanderError instead of exiting (main() turns it into exit 2); the
 * settings below are inherited by every command added after them, so they come first.
 */
export function buildProgram(env: Env = process.env, io?: CliIo): Command {
  const program = new Command('sri')
    .description('SRI automation platform: runs browser flows against web portals and keeps the evidence.')
    .version(cliVersion(), '-V, --version', 'print the version')
    .exitOverride()
    .showHelpAfterError('(add --help for usage)');
  if (io) {
    // Help, --version and usage errors go where the caller's output goes (tests capture them).
    program.configureOutput({
      writeOut: (t) => io.out(t.replace(/\n$/, '')),
      writeErr: (t) => (io.err ?? ((x: string) => process.stderr.write(`${x}\n`)))(t.replace(/\n$/, '')),
    });
  }

  program.command('up')
    .description('start the whole platform on this machine: Redis, S3, PostgreSQL (PGlite), API, workers, demo portal')
    .action(async () => {
      const { startStack, describeStack } = await import('../embedded/stack.ts');
      const stack = await startStack({ env, onProgress: (l) => console.log(`[sri] ${l}`) });
      console.log(`\n${describeStack(stack)}`);
      let stopping = false;
      const shutdown = (signal: string) => {
        if (stopping) return;
        stopping = true;
        console.log(`\n[sri] ${signal}: stopping every process the stack started…`);
        stack.stop().then(
          () => { console.log('[sri] stopped'); process.exit(0); },
          (e: unknown) => { console.error(`[sri] stopped with errors: ${String(e)}`); process.exit(1); },
        );
      };
      process.once('SIGINT', () => shutdown('SIGINT'));
      process.once('SIGTERM', () => shutdown('SIGTERM'));
    });

  program.command('api')
    .description('run the HTTP API alone (needs REDIS_URL, S3_ENDPOINT, JWT_SECRET, SCRIPT_SIGNING_SECRET or a DATA_DIR from sri up)')
    .action(async () => {
      const { runApiProcess } = await import('../control-plane/main.ts');
      await runApiProcess(withStoredSecrets(env, ['SCRIPT_SIGNING_SECRET', 'JWT_SECRET', 'SECRETS_KEYS']) as NodeJS.ProcessEnv);
    });

  program.command('worker')
    .description('run one execution-plane worker (talks only to Redis and S3)')
    .action(async () => {
      const { runWorkerProcess } = await import('../execution-plane/main.ts');
      // Never SECRETS_KEYS: a worker gets the secrets of its own jobs only, sealed under TRANSPORT_KEYS.
      await runWorkerProcess(withStoredSecrets(env, ['SCRIPT_SIGNING_SECRET']) as NodeJS.ProcessEnv);
    });

  program.command('migrate')
    .description('apply the database migrations (DATABASE_URL, else PGlite under DATA_DIR/pglite)')
    .action(async () => {
      const { openDatabase, migrate } = await import('../control-plane/db/index.ts');
      const databaseUrl = env['DATABASE_URL'] || undefined;
      const db = await openDatabase(databaseUrl ? { databaseUrl } : { dataDir: join(env['DATA_DIR'] || '.data', 'pglite') });
      try {
        const applied = await migrate(db);
        console.log(applied.length ? `applied ${applied.length} migration(s):\n${applied.map((m) => `  ${m}`).join('\n')}` : 'database is up to date');
      } finally {
        await db.close();
      }
    });

  program.command('demo')
    .description('run the integration walkthrough over HTTP against a running stack and print the artifacts')
    .option('--api <url>', 'API base URL', `http://127.0.0.1:${env['PORT'] || 3000}`)
    .option('--portal <url>', 'demo portal base URL', `http://127.0.0.1:${env['DEMO_PORT'] || 3100}`)
    .option('--timeout <ms>', 'how long to wait for the job (ms)', integerOption(1, MAX_DEMO_TIMEOUT_MS), 120_000)
    .option('--json', 'print one JSON document (job, status, artifacts, parsed data) instead of the steps')
    .action(async (opts: { api: string; portal: string; timeout: number; json?: boolean }) => {
      const { runDemo, demoJson } = await import('./demo.ts');
      const { createProgress } = await import('./progress.ts');
      const progress = createProgress({ json: opts.json === true, env });
      let outcome;
      try {
        outcome = await runDemo({
          apiUrl: opts.api, portalUrl: opts.portal, jobTimeoutMs: opts.timeout,
          print: (l) => progress.line(l), waiting: (t) => progress.waiting(t),
        });
      } finally {
        progress.stop();
      }
      if (opts.json) (io?.out ?? ((t: string) => console.log(t)))(JSON.stringify(demoJson(outcome), null, 2));
      if (outcome.job.status !== 'done') {
        console.error(`error ${outcome.job.error?.code ?? 'JOB_FAILED'}: job ${outcome.jobId} ${outcome.job.status}${outcome.job.error ? `: ${outcome.job.error.message}` : ''}`);
        process.exitCode = 1;
      }
    });

  program.command('demo-sri')
    .description('run the SRI pack against the demo portal\'s imitation of the SRI on a running stack (docs/sri.md): a month\'s documents into the documents table')
    .option('--api <url>', 'API base URL', `http://127.0.0.1:${env['PORT'] || 3000}`)
    .option('--portal <url>', 'demo portal base URL', `http://127.0.0.1:${env['DEMO_PORT'] || 3100}`)
    .option('--year <n>', 'year of the documents', integerOption(2000, 2100), 2026)
    .option('--month <n>', 'month of the documents, 1-12', integerOption(1, 12), 3)
    .addOption(new Option('--type <name>', 'the type of document').choices(['factura', 'liquidacionCompra', 'notaCredito', 'notaDebito', 'retencion']).default('factura'))
    .option('--timeout <ms>', 'how long to wait for the job (ms)', integerOption(1, MAX_DEMO_TIMEOUT_MS), 600_000)
    .action(async (opts: { api: string; portal: string; year: number; month: number; type: string; timeout: number }) => {
      const { runSriDemo } = await import('./sri-demo.ts');
      const { createProgress } = await import('./progress.ts');
      const progress = createProgress({ json: false, env });
      let outcome;
      try {
        outcome = await runSriDemo({
          apiUrl: opts.api, portalUrl: opts.portal, year: opts.year, month: opts.month, type: opts.type as never, jobTimeoutMs: opts.timeout,
          print: (l) => progress.line(l), waiting: (t) => progress.waiting(t),
        });
      } finally {
        progress.stop();
      }
      if (outcome.job.status !== 'done') {
        console.error(`error ${outcome.job.error?.code ?? 'JOB_FAILED'}: job ${outcome.jobId} ${outcome.job.status}${outcome.job.error ? `: ${outcome.job.error.message}` : ''}`);
        process.exitCode = 1;
      }
    });

  addLogsCommand(program, env);
  addQueueCommands(program, env, io);
  addSecretsCommand(program, withStoredSecrets(env, ['SECRETS_KEYS']), io);
  addWorkersCommand(program, env, io);
  addEnrolCommand(program, env, io);
  addParseCommand(program, io);
  addModuleCommand(program, env, io);
  addOpsCommands(program, env, io);
  addConfigCommand(program, env, io);

  return program;
}

/** Runs the CLI; sets process.exitCode for the failures it reports itself (1 runtime, 2 usage). */
export async function main(argv: readonly string[] = process.argv, env: Env = process.env): Promise<void> {
  try {
    await buildProgram(env).parseAsync([...argv]);
  } catch (e) {
    if (e instanceof CommanderError) {
      // Commander has printed the help, the version or the usage error already. Help asked for (--help, help) and
      // --version end here with 0; anything else — `sri` or `sri dlq` alone included — is a usage error.
      process.exitCode = e.exitCode === 0 ? 0 : EXIT_USAGE;
      return;
    }
    if (isSriError(e)) {
      console.error(`error ${e.code}: ${e.message}`);
    } else {
      console.error(e);
    }
    process.exitCode = 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}

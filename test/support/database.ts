/**
 * The control plane's PGlite database for tests, migrated once per test run and copied for every file that needs
 * one: PGlite runs initdb (WebAssembly) for every new database, 4–10 s of CPU on the 2-core machines, which every
 * file that started an API or a stack paid; loading a migrated copy takes a fraction of that (docs/testing.md).
 *
 * The template is keyed by PGlite's version and the migrations' names and contents, so a changed migration makes a
 * new one. It lives in SRI_TEST_CACHE_DIR (scripts/run-tests.mjs makes one per run and removes it afterwards), else
 * in the system's temporary folder. Tests of the migrations themselves start from an empty database, not from this.
 */
import { createHash, randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { listMigrations, migrate, MIGRATIONS_DIR, openDatabase, type Database } from '../../src/control-plane/db/index.ts';

interface Template {
  /** A PGlite data directory (on disk) with every migration applied. */
  readonly dir: string;
  /** The same, as PGlite's dumpDataDir writes it (for in-memory databases). */
  readonly tar: string;
}

// Its package.json is not among the package's exports: read it beside the module it resolves to (…/pglite/dist/).
const pgliteVersion = (JSON.parse(readFileSync(join(dirname(createRequire(import.meta.url).resolve('@electric-sql/pglite')), '..', 'package.json'), 'utf8')) as { version: string }).version;

function templateKey(): string {
  const h = createHash('sha256').update(`pglite ${pgliteVersion}\n`);
  for (const f of listMigrations()) h.update(`${f}\n`).update(readFileSync(join(MIGRATIONS_DIR, f)));
  return h.digest('hex').slice(0, 16);
}

let made: Promise<Template> | undefined;

/** The migrated template, made by the first caller of the run (two files starting at once may both make one). */
export function pgliteTemplate(): Promise<Template> {
  return made ??= makeTemplate();
}

async function makeTemplate(): Promise<Template> {
  const root = join(process.env['SRI_TEST_CACHE_DIR'] || tmpdir(), `sri-test-pglite-${templateKey()}`);
  const template = { dir: join(root, 'data'), tar: join(root, 'data.tar') };
  if (existsSync(join(root, 'ready'))) return template;
  // Made beside it and renamed into place, whole: a file that finds `root` finds a finished template.
  const build = `${root}.build-${process.pid}-${randomUUID()}`;
  mkdirSync(build, { recursive: true });
  try {
    const db = await openDatabase({ dataDir: join(build, 'data') });
    try {
      await migrate(db);
    } finally {
      await db.close();
    }
    const pg = await PGlite.create({ dataDir: join(build, 'data') });
    try {
      writeFileSync(join(build, 'data.tar'), Buffer.from(await (await pg.dumpDataDir('none')).arrayBuffer()));
    } finally {
      await pg.close();
    }
    writeFileSync(join(build, 'ready'), '');
    try {
      renameSync(build, root);
    } catch (e) {
      // Another file's template got there first: the same migrations, use it.
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== 'ENOTEMPTY' && code !== 'EEXIST') || !existsSync(join(root, 'ready'))) throw e;
    }
  } finally {
    rmSync(build, { recursive: true, force: true });
  }
  return template;
}

/** An in-memory PGlite database with every migration applied (migrate() on it applies nothing). */
export async function openTestDatabase(): Promise<Database> {
  const { tar } = await pgliteTemplate();
  return openDatabase({ pgliteTemplate: new Blob([readFileSync(tar)]) });
}

/**
 * Puts a migrated database where the embedded stack with DATA_DIR=`dataDir` opens its PGlite (`dataDir`/pglite),
 * so that the stack resumes it instead of running initdb. `dataDir`/pglite must not exist yet.
 */
export async function seedStackDatabase(dataDir: string): Promise<void> {
  const { dir } = await pgliteTemplate();
  const target = join(dataDir, 'pglite');
  if (existsSync(target)) throw new Error(`seedStackDatabase: ${target} exists already`);
  mkdirSync(dataDir, { recursive: true });
  cpSync(dir, target, { recursive: true });
}

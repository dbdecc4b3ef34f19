/**
 * A throw-away PostgreSQL server for tests: initdb + pg_ctl from Debian's postgresql package, on a random port on
 * 127.0.0.1, in a temporary directory. initdb and postgres refuse to run as root, so when the tests run as root
 * (CI does) the server runs as the `postgres` system user, which owns the directory.
 * Databases are created owned by a fresh non-superuser role, so row-level security applies to the owner as it
 * would on a managed server (FORCE ROW LEVEL SECURITY), and nothing works only because the test is a superuser.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { freePort } from '../../src/embedded/ports.ts';

export interface TestPostgres {
  readonly port: number;
  /** Superuser URL of the `postgres` database. */
  readonly adminUrl: string;
  /** Creates a database owned by a new non-superuser role and returns its DATABASE_URL. */
  createDatabase(name?: string): Promise<string>;
  stop(): Promise<void>;
}

export function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) {
    const dir = join(root, v, 'bin');
    if (existsSync(join(dir, 'pg_ctl'))) return dir;
  }
  throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql/<version>/bin; install them with: apt-get install -y postgresql');
}

export async function startTestPostgres(): Promise<TestPostgres> {
  const bin = postgresBinDir();
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'sri-pg-'));
  const dataDir = join(dir, 'data');
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(dir, uid, gid);
  }
  const run = (cmd: string, args: string[]) => {
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]] : [join(bin, cmd), args];
    const r = spawnSync(file as string, argv as string[], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${(r.stderr || r.stdout || String(r.error)).trim()}`);
  };
  const port = await freePort();
  let started = false;
  const stop = async () => {
    if (started) {
      try { run('pg_ctl', ['stop', '-D', dataDir, '-m', 'immediate', '-w']); } catch { /* already down */ }
      started = false;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    run('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--no-sync']);
    run('pg_ctl', ['start', '-D', dataDir, '-w', '-t', '60', '-l', join(dir, 'server.log'),
      '-o', `-p ${port} -h 127.0.0.1 -k ${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off`]);
    started = true;
  } catch (e) {
    await stop();
    throw e;
  }
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;

  return {
    port,
    adminUrl,
    stop,
    async createDatabase(name = `sri_test_${randomBytes(4).toString('hex')}`) {
      if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`bad database name ${name}`);
      const owner = `${name}_owner`;
      const password = randomBytes(12).toString('hex');
      const admin = new pg.Client({ connectionString: adminUrl });
      await admin.connect();
      try {
        // Identifiers cannot be bound as parameters; the name is checked above and the password is hex.
        await admin.query(`CREATE ROLE ${owner} LOGIN CREATEROLE PASSWORD '${password}'`);
        await admin.query(`CREATE DATABASE ${name} OWNER ${owner}`);
      } finally {
        await admin.end();
      }
      return `postgres://${owner}:${password}@127.0.0.1:${port}/${name}`;
    },
  };
}

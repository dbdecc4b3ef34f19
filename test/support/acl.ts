/**
 * deploy/redis/users.acl as a deployment renders it (deploy/redis/render-users-acl.sh puts the SHA-256 of each
 * password in), written into `dir` for a redis-server's --aclfile: the tests of the Redis users share this.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './cli.ts';

/** Renders the ACL file with `passwords` by user name (`api` → SRI_API_REDIS_PASSWORD) into dir/users.acl. */
export function writeUsersAcl(dir: string, passwords: Readonly<Record<string, string>>): { path: string; text: string } {
  const text = execFileSync('sh', [join(ROOT, 'deploy/redis/render-users-acl.sh')], {
    env: { PATH: process.env['PATH'], ...Object.fromEntries(Object.entries(passwords).map(([u, p]) => [`SRI_${u.toUpperCase()}_REDIS_PASSWORD`, p])) },
    stdio: ['ignore', 'pipe', 'ignore'],
  }).toString();
  const path = join(dir, 'users.acl');
  writeFileSync(path, text, { mode: 0o600 });
  return { path, text };
}

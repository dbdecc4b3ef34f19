/**
 * `sri enrol create | list | revoke`: the platform operator's worker enrolment, through the API's /api/operator/*
 * endpoints (docs/security.md "Worker enrolment") with OPERATOR_TOKEN (or --operator-token). The same as the curl
 * calls of the docs; the CLI stores nothing. `create` prints the one-time token on a line of its own (first), so
 * `TOKEN=$(sri enrol create | head -1)` works.
 */
import type { Command } from 'commander';
import { DEFAULT_ENROLMENT_TTL_SECONDS, MAX_ENROLMENT_TTL_SECONDS } from '../shared/enrolment.ts';
import { ERRORS, SriError, type ErrorCode } from '../shared/errors.ts';
import { integerOption } from './options.ts';
import { table, type CliIo } from './queue-ops.ts';

type Env = Record<string, string | undefined>;

export interface OperatorOptions { api: string; operatorToken?: string; json?: boolean }

/** One call of an /api/operator/* endpoint with the operator token (sri enrol, sri ops). */
export async function callApi(env: Env, o: OperatorOptions, method: string, path: string, body?: unknown): Promise<any> {
  const token = o.operatorToken ?? env['OPERATOR_TOKEN'];
  if (!token) throw new SriError('OPERATOR_ONLY', 'give the operator token with --operator-token or OPERATOR_TOKEN');
  let res: Response;
  try {
    res = await fetch(new URL(path, o.api), {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new SriError('SERVICE_UNAVAILABLE', `cannot reach the API at ${o.api}: ${(e as Error).message}`);
  }
  const text = await res.text();
  let parsed: any;
  try {
    parsed = JSON.parse(text);
  } catch { /* reported below */ }
  if (res.ok && parsed !== undefined) return parsed;
  const err = parsed?.error as { code?: string; message?: string } | undefined;
  const code = err?.code && err.code in ERRORS ? (err.code as ErrorCode) : 'INTERNAL';
  throw new SriError(code, err?.message ?? `${method} ${path} → ${res.status}: ${text.slice(0, 300)}`);
}

export function addEnrolCommand(program: Command, env: Env, io: CliIo = { out: (t) => console.log(t) }): void {
  const enrol = program.command('enrol')
    .description('enrol and revoke workers (the platform operator\'s; through the API, with OPERATOR_TOKEN)');
  const common = (c: Command) => c
    .option('--api <url>', 'API base URL', `http://127.0.0.1:${env['PORT'] || 3000}`)
    .option('--operator-token <token>', 'the API\'s OPERATOR_TOKEN; default: $OPERATOR_TOKEN')
    .option('--json', 'print the API\'s JSON answer');

  common(enrol.command('create'))
    .description('make a one-time enrolment token (printed once) and the worker\'s own Redis user')
    .option('--ttl <seconds>', 'how long the token can be redeemed', integerOption(1, MAX_ENROLMENT_TTL_SECONDS), DEFAULT_ENROLMENT_TTL_SECONDS)
    .option('--name <name>', 'prefix of the worker\'s id (lower-case letters, digits, -)')
    .action(async (o: OperatorOptions & { ttl: number; name?: string }) => {
      const r = await callApi(env, o, 'POST', '/api/operator/worker-enrolments', { ttlSeconds: o.ttl, ...(o.name ? { name: o.name } : {}) });
      if (o.json) return io.out(JSON.stringify(r, null, 2));
      io.out(r.token);
      io.out(`worker ${r.enrolment.workerId} (Redis user ${r.enrolment.redisUser}); the token works once, until ${r.enrolment.expiresAt}.`);
      io.out('Start the worker with WORKER_ENROLMENT_TOKEN=<token> and REDIS_URL naming the user sri-enrol.');
    });

  common(enrol.command('list'))
    .description('every enrolment: pending, redeemed, enrolled, expired, revoked')
    .action(async (o: OperatorOptions) => {
      const r = await callApi(env, o, 'GET', '/api/operator/worker-enrolments') as { enrolments: Record<string, string | null>[] };
      if (o.json) return io.out(JSON.stringify(r, null, 2));
      if (!r.enrolments.length) return io.out('no enrolments');
      io.out(table(['WORKER', 'STATUS', 'CREATED', 'EXPIRES', 'REVOKED'], r.enrolments.map((e) => [
        e['workerId'] ?? '', e['status'] ?? '', e['createdAt'] ?? '', e['expiresAt'] ?? '', e['revokedAt'] ?? '-',
      ])));
    });

  common(enrol.command('revoke'))
    .description('revoke a worker: its Redis user is deleted and its connections cut (enrolled), or it is marked revoked')
    .argument('<workerId>', 'the worker\'s id')
    .action(async (workerId: string, o: OperatorOptions) => {
      const r = await callApi(env, o, 'POST', `/api/operator/workers/${encodeURIComponent(workerId)}/revoke`);
      if (o.json) return io.out(JSON.stringify(r, null, 2));
      io.out(r.worker.enforced
        ? `revoked ${r.worker.workerId}: its Redis user is deleted and its connections are cut; it exits 77.`
        : `revoked ${r.worker.workerId}: marked only (it has no Redis user of its own); it stops itself at its next heartbeat.`);
    });
}

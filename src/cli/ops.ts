/**
 * `sri ops update | check | tasks | logs` (the platform operator's system tasks through the API's
 * /api/operator/system/* endpoints, with OPERATOR_TOKEN or --operator-token) and `sri ops-worker` (the operations
 * worker process itself, docs/operations.md). The CLI runs no container command: the ops worker does.
 */
import type { Command } from 'commander';
import { SriError } from '../shared/errors.ts';
import { callApi, type OperatorOptions } from './enrol.ts';
import { runLogs } from './logs.ts';
import { table, type CliIo } from './queue-ops.ts';

type Env = Record<string, string | undefined>;

interface TaskView {
  id: string; kind: string; status: string; requestedAt: string; finishedAt: string | null;
  requestedBy: { identity: string };
  details: { runningVersion?: string | null; targetVersion?: string; latestVersion?: string | null; updateAvailable?: boolean; rolledBack?: boolean } | null;
  error: { code: string; message: string; step?: string } | null;
  steps: { name: string; exitCode: number | null; durationMs: number; outcome: string }[];
}

const FINAL = new Set(['done', 'failed', 'interrupted']);

function summary(t: TaskView): string {
  const d = t.details ?? {};
  const what = t.kind === 'system.check'
    ? `running ${d.runningVersion ?? '?'}, newest ${d.latestVersion ?? '?'}${d.updateAvailable ? ' (update available)' : ''}`
    : `${d.runningVersion ?? '?'} → ${d.targetVersion ?? '?'}${d.rolledBack ? ' (rolled back)' : ''}`;
  return `${t.kind} ${t.id} ${t.status}: ${what}${t.error ? ` — ${t.error.code}${t.error.step ? ` at ${t.error.step}` : ''}: ${t.error.message}` : ''}`;
}

export function addOpsCommands(program: Command, env: Env, io: CliIo = { out: (t) => console.log(t) }): void {
  program.command('ops-worker')
    .description('run the privileged operations worker on this host (system updates from sri:ops:jobs; holds the container engine socket)')
    .action(async () => {
      const { runOpsWorkerProcess } = await import('../ops-worker/main.ts');
      await runOpsWorkerProcess(env as NodeJS.ProcessEnv);
    });

  const ops = program.command('ops').description('system updates and checks, run by the ops worker (the platform operator\'s; through the API, with OPERATOR_TOKEN)');
  const common = (c: Command) => c
    .option('--api <url>', 'API base URL', `http://127.0.0.1:${env['PORT'] || 3000}`)
    .option('--operator-token <token>', 'the API\'s OPERATOR_TOKEN; default: $OPERATOR_TOKEN')
    .option('--json', 'print the API\'s JSON answer');

  const follow = async (o: OperatorOptions, id: string) => {
    const token = o.operatorToken ?? env['OPERATOR_TOKEN'];
    if (!token) throw new SriError('OPERATOR_ONLY', 'give the operator token with --operator-token or OPERATOR_TOKEN');
    await runLogs({ apiUrl: o.api, token, jobId: id, path: `/api/operator/system/tasks/${encodeURIComponent(id)}/logs`, follow: true });
    const { task } = await callApi(env, o, 'GET', `/api/operator/system/tasks/${encodeURIComponent(id)}`) as { task: TaskView };
    io.out(summary(task));
    if (FINAL.has(task.status) && task.status !== 'done') process.exitCode = 1;
  };

  common(ops.command('update'))
    .description('update the platform\'s services to a version (pull, up, health, migrations; rolled back on failure)')
    .option('--version <tag>', 'the version (image tag); default: the newest the registry offers')
    .option('--migrate', 'run the database migrations in the new API image')
    .option('--services <names>', 'comma-separated compose services; default: all')
    .option('--follow', 'follow the task\'s live log until it ends')
    .action(async (o: OperatorOptions & { version?: string; migrate?: boolean; services?: string; follow?: boolean }) => {
      const body = {
        ...(o.version ? { targetVersion: o.version } : {}), runMigrations: o.migrate === true,
        ...(o.services ? { services: o.services.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
      };
      const r = await callApi(env, o, 'POST', '/api/operator/system/update', body) as { task: TaskView };
      if (o.json) return io.out(JSON.stringify(r, null, 2));
      io.out(`queued ${r.task.kind} ${r.task.id}`);
      if (o.follow) await follow(o, r.task.id);
      else io.out(`follow it with: sri ops logs ${r.task.id}`);
    });

  common(ops.command('check'))
    .description('which version runs and which newer one the registry offers (changes nothing); waits for the answer')
    .action(async (o: OperatorOptions) => {
      const r = await callApi(env, o, 'POST', '/api/operator/system/check') as { task: TaskView };
      let task = r.task;
      const until = Date.now() + 10 * 60_000;
      while (!FINAL.has(task.status) && Date.now() < until) {
        await new Promise((res) => setTimeout(res, 1000));
        task = (await callApi(env, o, 'GET', `/api/operator/system/tasks/${task.id}`) as { task: TaskView }).task;
      }
      if (o.json) return io.out(JSON.stringify({ task }, null, 2));
      io.out(summary(task));
      if (task.status !== 'done') process.exitCode = 1;
    });

  common(ops.command('tasks'))
    .description('the audit of the ops tasks, newest first')
    .option('--limit <n>', 'how many', '20')
    .action(async (o: OperatorOptions & { limit: string }) => {
      const r = await callApi(env, o, 'GET', `/api/operator/system/tasks?limit=${encodeURIComponent(o.limit)}`) as { tasks: TaskView[] };
      if (o.json) return io.out(JSON.stringify(r, null, 2));
      if (!r.tasks.length) return io.out('no ops tasks');
      io.out(table(['TASK', 'KIND', 'STATUS', 'REQUESTED', 'BY', 'OUTCOME'], r.tasks.map((t) => [
        t.id, t.kind, t.status, t.requestedAt, t.requestedBy.identity, t.error ? `${t.error.code}${t.error.step ? ` at ${t.error.step}` : ''}` : (t.details?.targetVersion ?? t.details?.runningVersion ?? '-'),
      ])));
    });

  common(ops.command('logs'))
    .description('follow an ops task\'s live log until it ends, then print its outcome')
    .argument('<taskId>', 'the task\'s id')
    .action(async (taskId: string, o: OperatorOptions) => follow(o, taskId));
}

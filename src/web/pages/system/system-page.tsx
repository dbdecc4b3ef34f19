/**
 * The platform operator's system page (docs/dashboard.md "System page"): the version running, what the registry
 * offers (a system.check), an update to a chosen version with its confirmation and the migrations option, the audit of
 * ops tasks, and one task open (`?task=<id>`, bookmarkable) with its steps and live log. The API enqueues; the ops
 * worker on the host does the work (docs/operations.md). Errors — 409 OPS_BUSY above all — are shown with the API's
 * message, which says what to do.
 */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useId, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useSearchParams } from 'react-router';
import { api, ok } from '../../api/client.ts';
import { Confirm } from '../../components/confirm.tsx';
import { ErrorMessage } from '../../components/error-message.tsx';
import { Loading } from '../../components/loading.tsx';
import { Page } from '../../components/page.tsx';
import { useFormat } from '../../lib/format.ts';
import { useOperatorSessionEnded } from '../../session/operator-session.tsx';
import { TaskLog } from './task-log.tsx';
import { isFinalTask, latestCheck, runningVersion, taskDurationMs, type OpsTask } from './tasks.ts';

const TASKS_KEY = ['operator', 'tasks'] as const;
/** While a task is queued or running, the page asks again this often (ms). */
const POLL_MS = 2000;

function TaskStatus({ status }: { status: OpsTask['status'] }) {
  const { t } = useTranslation();
  return <span className={`badge badge-${status === 'interrupted' ? 'failed' : status}`}>{t(`system.statuses.${status}`)}</span>;
}

function useTasks() {
  const ended = useOperatorSessionEnded();
  const q = useQuery({
    queryKey: TASKS_KEY,
    queryFn: () => ok(api.GET('/api/operator/system/tasks', { params: { query: { limit: 50 } } })).then((r) => r.tasks),
    refetchInterval: (query) => (query.state.data?.some((x) => !isFinalTask(x)) ? POLL_MS : false),
  });
  useEffect(() => { if (q.error) ended(q.error); }, [q.error, ended]);
  return q;
}

/** What a finished task came to, in one line. */
function Outcome({ task }: { task: OpsTask }) {
  const { t } = useTranslation();
  const d = task.details;
  if (task.error) {
    return (
      <>
        <span>{task.error.step ? t('system.failedAt', { step: task.error.step }) : task.error.code}</span>
        {d?.rolledBack && <span> · {d.rollbackHealthy ? t('system.rolledBack') : t('system.rollbackUnhealthy')}</span>}
        {task.error.outputTail && task.error.outputTail.length > 0 && (
          <details>
            <summary>{t('system.outputTail')}</summary>
            <pre className="output-tail">{task.error.outputTail.join('\n')}</pre>
          </details>
        )}
      </>
    );
  }
  if (task.status !== 'done') return <span className="muted">{t('common.none')}</span>;
  if (task.kind === 'system.check') {
    return <span>{t('system.checkOutcome', { running: d?.runningVersion ?? '?', latest: d?.latestVersion ?? '?' })}</span>;
  }
  return <span>{t('system.updateOutcome', { from: d?.runningVersion ?? '?', to: d?.targetVersion ?? '?' })}</span>;
}

function TaskDetail({ id, onClose }: { id: string; onClose: () => void }) {
  const { t } = useTranslation();
  const f = useFormat();
  const client = useQueryClient();
  const ended = useOperatorSessionEnded();
  const task = useQuery({
    queryKey: [...TASKS_KEY, id],
    queryFn: () => ok(api.GET('/api/operator/system/tasks/{id}', { params: { path: { id } } })).then((r) => r.task),
    refetchInterval: (query) => (query.state.data && isFinalTask(query.state.data) ? false : POLL_MS),
  });
  useEffect(() => { if (task.error) ended(task.error); }, [task.error, ended]);
  // The log's end means the task finished: read its outcome now rather than at the next poll.
  const onLogEnd = () => { void client.invalidateQueries({ queryKey: TASKS_KEY }); };
  return (
    <section className="card" aria-labelledby="task-heading">
      <div className="page-head">
        <h2 id="task-heading">{t('system.taskTitle', { kind: task.data ? t(task.data.kind === 'system.update' ? 'system.kinds.update' : 'system.kinds.check') : '' })}</h2>
        <button type="button" onClick={onClose}>{t('common.close')}</button>
      </div>
      {task.isPending && <Loading />}
      {task.isError && <ErrorMessage error={task.error} onRetry={() => void task.refetch()} />}
      {task.data && (
        <>
          <dl className="facts">
            <dt>{t('system.status')}</dt><dd><TaskStatus status={task.data.status} /></dd>
            <dt>{t('system.who')}</dt><dd>{task.data.requestedBy.identity}</dd>
            <dt>{t('system.when')}</dt><dd>{f.dateTime(task.data.requestedAt)}</dd>
            <dt>{t('system.duration')}</dt><dd>{f.durationMs(taskDurationMs(task.data))}</dd>
            <dt>{t('system.outcome')}</dt><dd><Outcome task={task.data} /></dd>
          </dl>
          {task.data.error && <div className="alert alert-error" role="alert"><p>{task.data.error.message}</p></div>}
          {task.data.steps.length > 0 && (
            <div className="table-wrap">
              <table>
                <caption>{t('system.steps')}</caption>
                <thead>
                  <tr>
                    <th scope="col">{t('system.step')}</th>
                    <th scope="col">{t('system.outcome')}</th>
                    <th scope="col">{t('system.exitCode')}</th>
                    <th scope="col">{t('system.duration')}</th>
                    <th scope="col">{t('system.outputTail')}</th>
                  </tr>
                </thead>
                <tbody>
                  {task.data.steps.map((s, i) => (
                    <tr key={`${s.name}-${i}`}>
                      <th scope="row">{s.name}</th>
                      <td><span className={`badge badge-${s.outcome === 'ok' ? 'done' : 'failed'}`}>{t(`system.stepOutcomes.${s.outcome}`)}</span></td>
                      <td>{s.exitCode ?? t('common.none')}</td>
                      <td>{f.durationMs(s.durationMs)}</td>
                      <td>{s.outputTail.length > 0 ? <details><summary>{t('system.lines', { count: s.outputTail.length })}</summary><pre className="output-tail">{s.outputTail.join('\n')}</pre></details> : t('common.none')}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
      <TaskLog taskId={id} onEnd={onLogEnd} />
    </section>
  );
}

export default function SystemPage() {
  const { t } = useTranslation();
  const f = useFormat();
  const client = useQueryClient();
  const [params, setParams] = useSearchParams();
  const open = params.get('task');
  const tasks = useTasks();
  const ended = useOperatorSessionEnded();
  const versionField = useId();
  const [chosen, setChosen] = useState<string | undefined>(undefined);
  const [migrations, setMigrations] = useState(false);
  const [confirming, setConfirming] = useState(false);

  const openTask = (id: string) => setParams((p) => { p.set('task', id); return p; });
  const started = (task: OpsTask) => {
    void client.invalidateQueries({ queryKey: TASKS_KEY });
    openTask(task.id);
  };
  const check = useMutation({
    mutationFn: () => ok(api.POST('/api/operator/system/check')),
    onSuccess: (r) => started(r.task),
    onError: ended,
  });
  const update = useMutation({
    mutationFn: (v: { targetVersion: string; runMigrations: boolean }) => ok(api.POST('/api/operator/system/update', { body: v })),
    onSuccess: (r) => { setConfirming(false); started(r.task); },
    onError: (e) => { setConfirming(false); ended(e); },
  });

  const list = tasks.data ?? [];
  const running = runningVersion(list);
  const lastCheck = latestCheck(list);
  const offered = lastCheck?.details?.availableVersions ?? [];
  const latest = lastCheck?.details?.latestVersion ?? undefined;
  const target = chosen ?? latest ?? offered[offered.length - 1];
  const checking = list.some((x) => x.kind === 'system.check' && !isFinalTask(x));
  const updating = list.some((x) => x.kind === 'system.update' && !isFinalTask(x));

  return (
    <Page title={t('system.title')}>
      {tasks.isError && <ErrorMessage error={tasks.error} onRetry={() => void tasks.refetch()} />}
      <section className="card" aria-labelledby="version-heading">
        <h2 id="version-heading">{t('system.versionTitle')}</h2>
        <dl className="facts">
          <dt>{t('system.running')}</dt>
          <dd data-testid="running-version">{running ?? t('system.unknownVersion')}</dd>
          <dt>{t('system.latest')}</dt>
          <dd>
            {lastCheck
              ? <>{latest ?? t('system.unknownVersion')} {lastCheck.details?.updateAvailable ? <span className="badge badge-warn">{t('system.updateAvailable')}</span> : <span className="badge badge-done">{t('system.upToDate')}</span>} <span className="muted">{t('system.checkedAt', { when: f.dateTime(lastCheck.finishedAt) })}</span></>
              : t('system.neverChecked')}
          </dd>
        </dl>
        <div className="actions">
          <button type="button" onClick={() => check.mutate()} disabled={check.isPending || checking}>
            {checking ? t('system.checking') : t('system.check')}
          </button>
        </div>
        {check.isError && <ErrorMessage error={check.error} />}
      </section>

      <section className="card" aria-labelledby="update-heading">
        <h2 id="update-heading">{t('system.updateTitle')}</h2>
        {offered.length === 0 ? <p>{t('system.checkFirst')}</p> : (
          <form className="form" onSubmit={(e) => { e.preventDefault(); setConfirming(true); }}>
            <label htmlFor={versionField}>
              <span>{t('system.targetVersion')}</span>
            </label>
            <select id={versionField} value={target ?? ''} onChange={(e) => setChosen(e.target.value)}>
              {[...offered].reverse().map((v) => <option key={v} value={v}>{v === running ? t('system.versionRunning', { version: v }) : v}</option>)}
            </select>
            <label className="checkbox">
              <input type="checkbox" checked={migrations} onChange={(e) => setMigrations(e.target.checked)} />
              <span>{t('system.runMigrations')}</span>
            </label>
            <p className="muted">{t('system.updateHint')}</p>
            {updating && <p className="alert alert-info" role="status">{t('system.updateRunning')}</p>}
            {!confirming && (
              // Not disabled while an update runs: what the page knows may be stale; the API decides (409 OPS_BUSY, shown).
              <button type="submit" className="primary" disabled={!target || update.isPending}>
                {t('system.updateTo', { version: target ?? '' })}
              </button>
            )}
          </form>
        )}
        {confirming && target && (
          <Confirm
            question={t(migrations ? 'system.confirmWithMigrations' : 'system.confirm', { version: target, running: running ?? t('system.unknownVersion') })}
            confirmLabel={t('system.updateTo', { version: target })}
            busy={update.isPending}
            onConfirm={() => update.mutate({ targetVersion: target, runMigrations: migrations })}
            onCancel={() => setConfirming(false)}
          />
        )}
        {update.isError && <ErrorMessage error={update.error} />}
      </section>

      {open && <TaskDetail key={open} id={open} onClose={() => setParams((p) => { p.delete('task'); return p; })} />}

      <section aria-labelledby="tasks-heading">
        <h2 id="tasks-heading">{t('system.tasksTitle')}</h2>
        {tasks.isPending ? <Loading /> : list.length === 0 ? <p>{t('system.noTasks')}</p> : (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">{t('system.task')}</th>
                  <th scope="col">{t('system.status')}</th>
                  <th scope="col">{t('system.who')}</th>
                  <th scope="col">{t('system.when')}</th>
                  <th scope="col">{t('system.duration')}</th>
                  <th scope="col">{t('system.outcome')}</th>
                </tr>
              </thead>
              <tbody>
                {list.map((x) => (
                  <tr key={x.id} aria-current={x.id === open ? 'true' : undefined}>
                    <th scope="row">
                      <Link to={`?task=${encodeURIComponent(x.id)}`}>
                        {x.kind === 'system.update' ? t('system.kindUpdateTo', { version: String(x.params['targetVersion'] ?? t('system.newest')) }) : t('system.kinds.check')}
                      </Link>
                    </th>
                    <td><TaskStatus status={x.status} /></td>
                    <td>{x.requestedBy.identity}</td>
                    <td>{f.dateTime(x.requestedAt)}</td>
                    <td>{f.durationMs(taskDurationMs(x))}</td>
                    <td><Outcome task={x} /></td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </Page>
  );
}

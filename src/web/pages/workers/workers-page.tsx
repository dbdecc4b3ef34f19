/**
 * The workers serving the organisation (admins): state, heartbeat age, capacity, memory, script sandbox and the
 * organisation's own jobs in flight (GET /api/workers shows nothing of other organisations' jobs). Read again every
 * 10 s.
 */
import { useQuery } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router';
import { api, ok } from '../../api/client.ts';
import { AdminOnly } from '../../components/admin-only.tsx';
import { EmptyState } from '../../components/empty-state.tsx';
import { ErrorMessage } from '../../components/error-message.tsx';
import { Loading } from '../../components/loading.tsx';
import { Page } from '../../components/page.tsx';
import { useFormat } from '../../lib/format.ts';
import { AdminNav } from '../admin/admin-nav.tsx';

const REFRESH_MS = 10_000;

const SANDBOXES = ['sandbox-bwrap', 'sandbox-process'] as const;
type Sandbox = (typeof SANDBOXES)[number];
const isSandbox = (s: string): s is Sandbox => (SANDBOXES as readonly string[]).includes(s);

function Workers() {
  const { t } = useTranslation();
  const f = useFormat();
  // A mode this app does not know yet (a newer worker) is shown as the worker says it.
  const sandboxText = (s: string | null) => (s === null ? t('common.none') : isSandbox(s) ? t(`workers.sandboxes.${s}`) : s);
  const list = useQuery({ queryKey: ['workers'], queryFn: () => ok(api.GET('/api/workers')), refetchInterval: REFRESH_MS });
  if (list.isPending) return <Loading />;
  if (list.isError) return <ErrorMessage error={list.error} onRetry={() => void list.refetch()} />;
  if (list.data.workers.length === 0) return <EmptyState>{t('workers.empty')}</EmptyState>;
  return (
    <div className="table-wrap" role="region" aria-label={t('workers.title')} tabIndex={0}>
      <table>
        <thead>
          <tr>
            <th scope="col">{t('workers.id')}</th><th scope="col">{t('workers.state')}</th><th scope="col">{t('workers.heartbeat')}</th>
            <th scope="col">{t('workers.inFlight')}</th><th scope="col">{t('workers.capacity')}</th><th scope="col">{t('workers.memory')}</th>
            <th scope="col">{t('workers.sandbox')}</th>
          </tr>
        </thead>
        <tbody>
          {list.data.workers.map((w) => (
            <tr key={w.workerId}>
              <td><code>{w.workerId}</code></td>
              <td>{t(`workers.states.${w.state}`)}</td>
              <td>{w.heartbeatAgeMs === null ? t('common.none') : t('workers.heartbeatAge', { seconds: f.number(Math.round(w.heartbeatAgeMs / 1000)) })}</td>
              <td>
                {w.jobsInFlight}
                {w.jobs.filter((j) => j.jobId).map((j) => <span key={j.jobId}> <Link to={`/jobs/${j.jobId}`}><code>{j.jobId!.slice(0, 8)}</code></Link></span>)}
              </td>
              <td>{w.maxJobs ?? t('common.none')}</td>
              <td>{w.resources ? f.bytes(w.resources.memory.usedBytes) : t('common.none')}</td>
              <td>{sandboxText(w.sandbox)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export default function WorkersPage() {
  const { t } = useTranslation();
  return (
    <AdminOnly title={t('workers.title')}>
      <Page title={t('workers.title')}>
        <AdminNav />
        <p className="intro">{t('workers.intro')}</p>
        <Workers />
      </Page>
    </AdminOnly>
  );
}

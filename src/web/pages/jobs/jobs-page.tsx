/**
 * The organisation's jobs, newest first, paged and filtered; the page and the filters are in the URL
 * (`?status=failed&status=dead&provider=demo&from=2026-01-01&to=2026-01-31&page=2`), so a view can be bookmarked and
 * the back button works. Dates are days in the user's time zone, both included: the API gets the instants
 * `from` 00:00 and the day after `to` 00:00 (exclusive). While a job on the page is unfinished the list refreshes
 * every few seconds.
 */
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { Link, useSearchParams } from 'react-router';
import { api, ok } from '../../api/client.ts';
import { EmptyState } from '../../components/empty-state.tsx';
import { ErrorMessage } from '../../components/error-message.tsx';
import { Loading } from '../../components/loading.tsx';
import { Page } from '../../components/page.tsx';
import { isFinal, StatusBadge } from '../../components/status-badge.tsx';
import { useFormat } from '../../lib/format.ts';
import { useProviders } from '../providers/providers-page.tsx';
import { JobFilters, filtersFrom, filterQuery, hasFilters } from './job-filters.tsx';
import { Pager } from '../../components/pager.tsx';

const PAGE_SIZE = 20;
/** How often the list is read again while one of its jobs is unfinished, and otherwise. */
const LIVE_REFRESH_MS = 3000;
const IDLE_REFRESH_MS = 30_000;

export default function JobsPage() {
  const { t } = useTranslation();
  const f = useFormat();
  const [params, setParams] = useSearchParams();
  const page = Math.max(1, Number.parseInt(params.get('page') ?? '1', 10) || 1);
  const filters = filtersFrom(params);
  const providers = useProviders();
  const jobs = useQuery({
    queryKey: ['jobs', { page, ...filters }],
    queryFn: () => ok(api.GET('/api/jobs', { params: { query: { page, pageSize: PAGE_SIZE, ...filterQuery(filters) } } })),
    placeholderData: keepPreviousData,
    refetchInterval: (q) => (q.state.data?.jobs.some((j) => !isFinal(j.status)) ? LIVE_REFRESH_MS : IDLE_REFRESH_MS),
  });
  const goTo = (p: number) => setParams((prev) => {
    const next = new URLSearchParams(prev);
    if (p <= 1) next.delete('page');
    else next.set('page', String(p));
    return next;
  });
  const filtered = hasFilters(filters);
  const filterForm = <JobFilters params={params} setParams={setParams} providers={providers.data?.providers ?? []} />;

  if (jobs.isPending) return <Page title={t('jobs.title')}>{filterForm}<Loading /></Page>;
  if (jobs.isError) return <Page title={t('jobs.title')}>{filterForm}<ErrorMessage error={jobs.error} onRetry={() => void jobs.refetch()} /></Page>;
  const { total } = jobs.data;
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  const providerName = (id: string) => providers.data?.providers.find((p) => p.id === id)?.displayName ?? id;
  return (
    <Page title={t('jobs.title')}>
      <p className="intro">{t('jobs.intro')}</p>
      {filterForm}
      {total === 0 && filtered ? (
        <EmptyState action={<Link className="button" to="/jobs">{t('jobs.clearFilters')}</Link>}>{t('jobs.emptyFiltered')}</EmptyState>
      ) : total === 0 ? (
        <EmptyState action={<Link className="button" to="/providers">{t('nav.providers')}</Link>}>{t('jobs.empty')}</EmptyState>
      ) : (
        <>
          <p aria-live="polite">{t('jobs.total', { count: total })}</p>
          <div className="table-wrap" role="region" aria-label={t('jobs.title')} tabIndex={0}>
            <table>
              <thead>
                <tr>
                  <th scope="col">{t('jobs.job')}</th>
                  <th scope="col">{t('jobs.status')}</th>
                  <th scope="col">{t('jobs.provider')}</th>
                  <th scope="col">{t('jobs.flowVersion')}</th>
                  <th scope="col">{t('jobs.user')}</th>
                  <th scope="col">{t('jobs.created')}</th>
                  <th scope="col">{t('jobs.finished')}</th>
                  <th scope="col">{t('jobs.duration')}</th>
                  <th scope="col">{t('jobs.attempt')}</th>
                </tr>
              </thead>
              <tbody>
                {jobs.data.jobs.map((j) => (
                  <tr key={j.id}>
                    <td><Link to={`/jobs/${j.id}`} aria-label={t('jobs.open', { id: j.id })}><code>{j.id.slice(0, 8)}</code></Link></td>
                    <td><StatusBadge status={j.status} /></td>
                    <td>{providerName(j.providerId)}</td>
                    <td>{j.flowVersion}</td>
                    <td>{j.userName ?? t('common.none')}</td>
                    <td>{f.dateTime(j.createdAt)}</td>
                    <td>{f.dateTime(j.finishedAt)}</td>
                    <td>{f.durationMs(j.duration)}</td>
                    <td>{j.maxAttempts === null ? j.attempt : t('jobs.attemptOf', { attempt: j.attempt, max: j.maxAttempts })}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <Pager page={page} pages={pages} goTo={goTo} />
        </>
      )}
    </Page>
  );
}

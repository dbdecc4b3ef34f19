/**
 * The organisation's dead letters (admins): newest first, paged (`?page=` in the URL); show one's message, requeue
 * it (unless it was cut), purge them all after a confirmation.
 */
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useSearchParams } from 'react-router';
import { api, ok, type paths } from '../../api/client.ts';
import { AdminOnly } from '../../components/admin-only.tsx';
import { Confirm } from '../../components/confirm.tsx';
import { EmptyState } from '../../components/empty-state.tsx';
import { ErrorMessage } from '../../components/error-message.tsx';
import { Loading } from '../../components/loading.tsx';
import { Page } from '../../components/page.tsx';
import { useFormat } from '../../lib/format.ts';
import { AdminNav } from '../admin/admin-nav.tsx';

const PAGE_SIZE = 20;
type Entry = paths['/api/admin/dlq']['get']['responses'][200]['content']['application/json']['entries'][number];

function EntryDetail({ id }: { id: string }) {
  const { t } = useTranslation();
  const entry = useQuery({ queryKey: ['dlq', 'entry', id], queryFn: () => ok(api.GET('/api/admin/dlq/{entryId}', { params: { path: { entryId: id } } })) });
  if (entry.isPending) return <Loading />;
  if (entry.isError) return <ErrorMessage error={entry.error} />;
  return <pre className="payload" tabIndex={0} role="region" aria-label={t('dlq.payload', { id })}>{entry.data.entry.raw}</pre>;
}

function DeadLetters() {
  const { t } = useTranslation();
  const f = useFormat();
  const client = useQueryClient();
  const [params, setParams] = useSearchParams();
  const page = Math.max(1, Number.parseInt(params.get('page') ?? '1', 10) || 1);
  const [open, setOpen] = useState<string | undefined>();
  const [purging, setPurging] = useState(false);
  const [notice, setNotice] = useState('');
  const list = useQuery({
    queryKey: ['dlq', { page }],
    queryFn: () => ok(api.GET('/api/admin/dlq', { params: { query: { offset: (page - 1) * PAGE_SIZE, limit: PAGE_SIZE } } })),
    placeholderData: keepPreviousData,
  });
  const refresh = () => client.invalidateQueries({ queryKey: ['dlq'] });
  const requeue = useMutation({
    mutationFn: (e: Entry) => ok(api.POST('/api/admin/dlq/{entryId}/requeue', { params: { path: { entryId: e.id } } })),
    onSuccess: (_r, e) => { setNotice(t('dlq.requeued', { id: e.jobId ?? e.id })); void refresh(); void client.invalidateQueries({ queryKey: ['jobs'] }); },
  });
  const purge = useMutation({
    mutationFn: () => ok(api.DELETE('/api/admin/dlq')),
    onSuccess: (r) => { setPurging(false); setNotice(t('dlq.purged', { count: r.purged })); void refresh(); },
  });
  const goTo = (p: number) => setParams((prev) => { const next = new URLSearchParams(prev); if (p <= 1) next.delete('page'); else next.set('page', String(p)); return next; });

  if (list.isPending) return <Loading />;
  if (list.isError) return <ErrorMessage error={list.error} onRetry={() => void list.refetch()} />;
  const { entries, hasMore } = list.data;
  const failed = requeue.error ?? purge.error;
  return (
    <>
      <p className="notice" role="status">{notice}</p>
      {failed && <ErrorMessage error={failed} />}
      {entries.length === 0 && page === 1 ? <EmptyState>{t('dlq.empty')}</EmptyState> : (
        <>
          <div className="table-wrap" role="region" aria-label={t('dlq.title')} tabIndex={0}>
            <table>
              <thead>
                <tr>
                  <th scope="col">{t('dlq.job')}</th>
                  <th scope="col">{t('dlq.reason')}</th>
                  <th scope="col">{t('dlq.at')}</th>
                  <th scope="col">{t('dlq.size')}</th>
                  <th scope="col"><span className="visually-hidden">{t('common.actions')}</span></th>
                </tr>
              </thead>
              <tbody>
                {entries.map((e) => (
                  <tr key={e.id}>
                    <td>{e.jobId ? <Link to={`/jobs/${e.jobId}`}><code>{e.jobId.slice(0, 8)}</code></Link> : t('common.none')}</td>
                    <td>{e.reason}{e.truncated && <> · <strong>{t('dlq.truncated')}</strong></>}
                      {open === e.id && <EntryDetail id={e.id} />}</td>
                    <td>{f.dateTime(e.at)}</td>
                    <td>{f.bytes(e.rawBytes)}</td>
                    <td>
                      <div className="actions">
                        <button type="button" aria-expanded={open === e.id}
                          onClick={() => setOpen(open === e.id ? undefined : e.id)}>{open === e.id ? t('dlq.hide') : t('dlq.show', { id: (e.jobId ?? e.id).slice(0, 8) })}</button>
                        <button type="button" disabled={e.truncated || requeue.isPending} aria-label={t('dlq.requeueOne', { id: e.jobId ?? e.id })}
                          onClick={() => requeue.mutate(e)}>{t('dlq.requeue')}</button>
                      </div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <nav className="pager" aria-label={t('common.pageOf', { page, pages: hasMore ? page + 1 : page })}>
            <button type="button" disabled={page <= 1} onClick={() => goTo(page - 1)}>{t('common.previous')}</button>
            <button type="button" disabled={!hasMore} onClick={() => goTo(page + 1)}>{t('common.next')}</button>
          </nav>
          {purging
            ? <Confirm question={t('dlq.confirmPurge')} confirmLabel={t('dlq.confirmYes')} busy={purge.isPending} onConfirm={() => purge.mutate()} onCancel={() => setPurging(false)} />
            : <div className="actions"><button type="button" className="danger" onClick={() => setPurging(true)}>{t('dlq.purge')}</button></div>}
        </>
      )}
    </>
  );
}

export default function DeadLettersPage() {
  const { t } = useTranslation();
  return (
    <AdminOnly title={t('dlq.title')}>
      <Page title={t('dlq.title')}>
        <AdminNav />
        <p className="intro">{t('dlq.intro')}</p>
        <DeadLetters />
      </Page>
    </AdminOnly>
  );
}

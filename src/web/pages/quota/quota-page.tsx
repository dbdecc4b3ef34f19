/** The organisation's queue quota (admins): jobs running at once and started per minute; empty = no limit. */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { api, ok } from '../../api/client.ts';
import { AdminOnly } from '../../components/admin-only.tsx';
import { ErrorMessage } from '../../components/error-message.tsx';
import { Loading } from '../../components/loading.tsx';
import { Page } from '../../components/page.tsx';
import { AdminNav } from '../admin/admin-nav.tsx';

const KEY = ['quota'] as const;
const toField = (n: number | null) => (n === null ? '' : String(n));
const fromField = (s: string) => (s.trim() === '' ? null : Number(s));

function Quota() {
  const { t } = useTranslation();
  const client = useQueryClient();
  const quota = useQuery({ queryKey: KEY, queryFn: () => ok(api.GET('/api/admin/quota')) });
  const [maxConcurrent, setMaxConcurrent] = useState('');
  const [perMinute, setPerMinute] = useState('');
  useEffect(() => {
    if (quota.data) { setMaxConcurrent(toField(quota.data.maxConcurrent)); setPerMinute(toField(quota.data.perMinute)); }
  }, [quota.data]);
  const save = useMutation({
    mutationFn: () => ok(api.PUT('/api/admin/quota', { body: { maxConcurrent: fromField(maxConcurrent), perMinute: fromField(perMinute) } })),
    onSuccess: (q) => client.setQueryData(KEY, q),
  });
  const submit = (e: FormEvent) => { e.preventDefault(); save.mutate(); };
  if (quota.isPending) return <Loading />;
  if (quota.isError) return <ErrorMessage error={quota.error} onRetry={() => void quota.refetch()} />;
  return (
    <form className="form card" onSubmit={submit}>
      <div className="row">
        <label>
          <span>{t('quota.maxConcurrent')}</span>
          <input type="number" min={0} max={1_000_000} step={1} value={maxConcurrent} placeholder={t('quota.none')} onChange={(e) => setMaxConcurrent(e.target.value)} />
        </label>
        <label>
          <span>{t('quota.perMinute')}</span>
          <input type="number" min={0} max={1_000_000} step={1} value={perMinute} placeholder={t('quota.none')} onChange={(e) => setPerMinute(e.target.value)} />
        </label>
      </div>
      {save.isError && <ErrorMessage error={save.error} />}
      <div className="actions">
        <button type="submit" className="primary" disabled={save.isPending}>{t('quota.submit')}</button>
        <span className="notice" role="status">{save.isSuccess ? t('quota.saved') : ''}</span>
      </div>
    </form>
  );
}

export default function QuotaPage() {
  const { t } = useTranslation();
  return (
    <AdminOnly title={t('quota.title')}>
      <Page title={t('quota.title')}>
        <AdminNav />
        <p className="intro">{t('quota.intro')}</p>
        <Quota />
      </Page>
    </AdminOnly>
  );
}

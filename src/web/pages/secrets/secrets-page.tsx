/** The organisation's secrets (admins): names and times only — values are written, never read back — store, delete. */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { api, ok } from '../../api/client.ts';
import { AdminOnly } from '../../components/admin-only.tsx';
import { Confirm } from '../../components/confirm.tsx';
import { EmptyState } from '../../components/empty-state.tsx';
import { ErrorMessage } from '../../components/error-message.tsx';
import { Loading } from '../../components/loading.tsx';
import { Page } from '../../components/page.tsx';
import { useFormat } from '../../lib/format.ts';
import { AdminNav } from '../admin/admin-nav.tsx';

const KEY = ['secrets'] as const;

function Secrets() {
  const { t } = useTranslation();
  const f = useFormat();
  const client = useQueryClient();
  const list = useQuery({ queryKey: KEY, queryFn: () => ok(api.GET('/api/secrets')) });
  const [name, setName] = useState('');
  const [value, setValue] = useState('');
  const [removing, setRemoving] = useState<string | undefined>();
  const [notice, setNotice] = useState('');
  const store = useMutation({
    mutationFn: () => ok(api.PUT('/api/secrets/{name}', { params: { path: { name } }, body: { value } })),
    // The value leaves the page's memory as soon as it is stored.
    onSuccess: () => { setNotice(t('secrets.stored', { name })); setName(''); setValue(''); void client.invalidateQueries({ queryKey: KEY }); },
  });
  const remove = useMutation({
    mutationFn: (n: string) => ok(api.DELETE('/api/secrets/{name}', { params: { path: { name: n } } })),
    onSuccess: (_r, n) => { setRemoving(undefined); setNotice(t('secrets.removed', { name: n })); void client.invalidateQueries({ queryKey: KEY }); },
  });
  const submit = (e: FormEvent) => { e.preventDefault(); store.mutate(); };
  if (list.isPending) return <Loading />;
  if (list.isError) return <ErrorMessage error={list.error} onRetry={() => void list.refetch()} />;
  return (
    <>
      <p className="notice" role="status">{notice}</p>
      {remove.isError && <ErrorMessage error={remove.error} />}
      {list.data.secrets.length === 0 ? <EmptyState>{t('secrets.empty')}</EmptyState> : (
        <div className="table-wrap" role="region" aria-label={t('secrets.title')} tabIndex={0}>
          <table>
            <thead><tr><th scope="col">{t('secrets.name')}</th><th scope="col">{t('secrets.updated')}</th><th scope="col"><span className="visually-hidden">{t('common.actions')}</span></th></tr></thead>
            <tbody>
              {list.data.secrets.map((s) => (
                <tr key={s.name}>
                  <td><code>{s.name}</code></td>
                  <td>{f.dateTime(s.updatedAt)}</td>
                  <td>{removing === s.name
                    ? <Confirm question={t('secrets.remove', { name: s.name })} confirmLabel={t('common.remove')} busy={remove.isPending} onConfirm={() => remove.mutate(s.name)} onCancel={() => setRemoving(undefined)} />
                    : <button type="button" className="danger" onClick={() => setRemoving(s.name)}>{t('secrets.remove', { name: s.name })}</button>}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <form className="form card" onSubmit={submit} aria-label={t('secrets.add')}>
        <h2>{t('secrets.add')}</h2>
        <div className="row">
          <label>
            <span>{t('secrets.name')}</span>
            <input required value={name} pattern="[A-Za-z0-9_.\-]{1,64}" onChange={(e) => setName(e.target.value)} autoComplete="off" />
            <small>{t('secrets.nameHelp')}</small>
          </label>
          <label><span>{t('secrets.value')}</span><input type="password" required value={value} onChange={(e) => setValue(e.target.value)} autoComplete="new-password" /></label>
        </div>
        {store.isError && <ErrorMessage error={store.error} />}
        <div className="actions"><button type="submit" className="primary" disabled={store.isPending}>{t('secrets.submit')}</button></div>
      </form>
    </>
  );
}

export default function SecretsPage() {
  const { t } = useTranslation();
  return (
    <AdminOnly title={t('secrets.title')}>
      <Page title={t('secrets.title')}>
        <AdminNav />
        <p className="intro">{t('secrets.intro')}</p>
        <Secrets />
      </Page>
    </AdminOnly>
  );
}

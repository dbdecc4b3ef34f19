/**
 * The organisation's webhooks (admins): list, add (its signing secret shown once), delete, and each one's recent
 * deliveries with their status, attempts, the receiver's HTTP status and the error class — never the receiver's text.
 */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { api, ok, type paths } from '../../api/client.ts';
import { AdminOnly } from '../../components/admin-only.tsx';
import { Confirm } from '../../components/confirm.tsx';
import { EmptyState } from '../../components/empty-state.tsx';
import { ErrorMessage } from '../../components/error-message.tsx';
import { Loading } from '../../components/loading.tsx';
import { Page } from '../../components/page.tsx';
import { useFormat } from '../../lib/format.ts';
import { AdminNav } from '../admin/admin-nav.tsx';

const KEY = ['webhooks'] as const;
type WebhookEvent = NonNullable<paths['/api/webhooks']['post']['requestBody']>['content']['application/json']['events'][number];
const EVENTS: readonly WebhookEvent[] = ['job.done', 'job.failed', 'job.dead', 'job.cancelled'];

function Deliveries({ id, url }: { id: string; url: string }) {
  const { t } = useTranslation();
  const f = useFormat();
  const list = useQuery({ queryKey: [...KEY, id, 'deliveries'], queryFn: () => ok(api.GET('/api/webhooks/{id}/deliveries', { params: { path: { id }, query: {} } })) });
  if (list.isPending) return <Loading />;
  if (list.isError) return <ErrorMessage error={list.error} />;
  if (list.data.deliveries.length === 0) return <p className="muted">{t('webhooks.noDeliveries')}</p>;
  return (
    <div className="table-wrap" role="region" aria-label={t('webhooks.showDeliveries', { url })} tabIndex={0}>
      <table>
        <thead>
          <tr>
            <th scope="col">{t('webhooks.events')}</th><th scope="col">{t('dlq.job')}</th><th scope="col">{t('webhooks.status')}</th>
            <th scope="col">{t('webhooks.attempts')}</th><th scope="col">{t('webhooks.response')}</th><th scope="col">{t('webhooks.error')}</th>
            <th scope="col">{t('webhooks.created')}</th>
          </tr>
        </thead>
        <tbody>
          {list.data.deliveries.map((d) => (
            <tr key={d.id}>
              <td>{d.event}</td><td><code>{d.jobId.slice(0, 8)}</code></td><td>{t(`webhooks.deliveryStatus.${d.status}`)}</td><td>{d.attempts}</td>
              <td>{d.responseStatus ?? t('common.none')}</td><td>{d.errorClass ?? t('common.none')}</td><td>{f.dateTime(d.createdAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function AddWebhook({ onAdded }: { onAdded: (secret: string) => void }) {
  const { t } = useTranslation();
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState<WebhookEvent[]>(['job.done', 'job.failed']);
  const add = useMutation({
    mutationFn: () => ok(api.POST('/api/webhooks', { body: { url, events } })),
    onSuccess: (r) => { setUrl(''); onAdded(r.secret); },
  });
  const toggle = (e: WebhookEvent, on: boolean) => setEvents((prev) => (on ? [...prev.filter((x) => x !== e), e] : prev.filter((x) => x !== e)));
  const submit = (e: FormEvent) => { e.preventDefault(); add.mutate(); };
  return (
    <form className="form card" onSubmit={submit} aria-label={t('webhooks.add')}>
      <h2>{t('webhooks.add')}</h2>
      <label><span>{t('webhooks.url')}</span><input type="url" required value={url} onChange={(e) => setUrl(e.target.value)} placeholder="https://" /></label>
      <fieldset className="inline">
        <legend>{t('webhooks.events')}</legend>
        {[...EVENTS, '*' as const].map((e) => (
          <label key={e} className="choice">
            <input type="checkbox" checked={events.includes(e)} onChange={(ev) => toggle(e, ev.target.checked)} /> {e === '*' ? t('webhooks.allEvents') : e}
          </label>
        ))}
      </fieldset>
      {add.isError && <ErrorMessage error={add.error} />}
      <div className="actions"><button type="submit" className="primary" disabled={add.isPending || events.length === 0}>{t('webhooks.submit')}</button></div>
    </form>
  );
}

function Webhooks() {
  const { t } = useTranslation();
  const f = useFormat();
  const client = useQueryClient();
  const list = useQuery({ queryKey: KEY, queryFn: () => ok(api.GET('/api/webhooks')) });
  const [secret, setSecret] = useState<string | undefined>();
  const [open, setOpen] = useState<string | undefined>();
  const [removing, setRemoving] = useState<string | undefined>();
  const [notice, setNotice] = useState('');
  const remove = useMutation({
    mutationFn: (id: string) => ok(api.DELETE('/api/webhooks/{id}', { params: { path: { id } } })),
    onSuccess: () => { setRemoving(undefined); setNotice(t('webhooks.removed')); void client.invalidateQueries({ queryKey: KEY }); },
  });
  if (list.isPending) return <Loading />;
  if (list.isError) return <ErrorMessage error={list.error} onRetry={() => void list.refetch()} />;
  return (
    <>
      <p className="notice" role="status">{notice}</p>
      {remove.isError && <ErrorMessage error={remove.error} />}
      {secret && (
        <section className="card" aria-label={t('webhooks.secretTitle')}>
          <h2>{t('webhooks.secretTitle')}</h2>
          <p>{t('webhooks.secretHelp')}</p>
          <code className="hash">{secret}</code>
        </section>
      )}
      {list.data.webhooks.length === 0 ? <EmptyState>{t('webhooks.empty')}</EmptyState> : (
        <ul className="cards">
          {list.data.webhooks.map((w) => (
            <li key={w.id} className="card">
              <h2><code className="hash">{w.url}</code></h2>
              <dl className="facts">
                <dt>{t('webhooks.events')}</dt><dd>{w.events.join(', ')}</dd>
                <dt>{t('webhooks.created')}</dt><dd>{f.dateTime(w.createdAt)}</dd>
              </dl>
              <div className="actions">
                <button type="button" aria-expanded={open === w.id} onClick={() => setOpen(open === w.id ? undefined : w.id)}>{t('webhooks.deliveries')}</button>
                <button type="button" className="danger" onClick={() => setRemoving(w.id)}>{t('webhooks.remove', { url: w.url })}</button>
              </div>
              {removing === w.id && <Confirm question={t('webhooks.remove', { url: w.url })} confirmLabel={t('common.remove')} busy={remove.isPending}
                onConfirm={() => remove.mutate(w.id)} onCancel={() => setRemoving(undefined)} />}
              {open === w.id && <Deliveries id={w.id} url={w.url} />}
            </li>
          ))}
        </ul>
      )}
      <AddWebhook onAdded={(s) => { setSecret(s); void client.invalidateQueries({ queryKey: KEY }); }} />
    </>
  );
}

export default function WebhooksPage() {
  const { t } = useTranslation();
  return (
    <AdminOnly title={t('webhooks.title')}>
      <Page title={t('webhooks.title')}>
        <AdminNav />
        <p className="intro">{t('webhooks.intro')}</p>
        <Webhooks />
      </Page>
    </AdminOnly>
  );
}

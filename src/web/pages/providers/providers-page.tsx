/** The provider catalogue, the caller's connection to each (until when), connect and disconnect. */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { api, ok } from '../../api/client.ts';
import { EmptyState } from '../../components/empty-state.tsx';
import { ErrorMessage } from '../../components/error-message.tsx';
import { Loading } from '../../components/loading.tsx';
import { Page } from '../../components/page.tsx';
import { useFormat } from '../../lib/format.ts';
import { ConnectForm } from './connect-form.tsx';
import { ProviderHealthFacts } from './provider-health.tsx';

export const PROVIDERS_KEY = ['providers'] as const;
export const CONNECTIONS_KEY = ['providers', 'connected'] as const;

export function useProviders() {
  return useQuery({ queryKey: PROVIDERS_KEY, queryFn: () => ok(api.GET('/api/providers')), staleTime: 60_000 });
}

export default function ProvidersPage() {
  const { t } = useTranslation();
  const f = useFormat();
  const client = useQueryClient();
  const providers = useProviders();
  const connections = useQuery({ queryKey: CONNECTIONS_KEY, queryFn: () => ok(api.GET('/api/providers/connected')) });
  const [connecting, setConnecting] = useState<string | undefined>();
  const [notice, setNotice] = useState('');
  const disconnect = useMutation({
    mutationFn: (id: string) => ok(api.DELETE('/api/providers/{id}/connect', { params: { path: { id } } })),
    onSuccess: (_r, id) => {
      const name = providers.data?.providers.find((p) => p.id === id)?.displayName ?? id;
      setNotice(t('providers.disconnected', { name }));
      void client.invalidateQueries({ queryKey: CONNECTIONS_KEY });
    },
  });

  if (providers.isPending || connections.isPending) return <Page title={t('providers.title')}><Loading /></Page>;
  if (providers.isError) return <Page title={t('providers.title')}><ErrorMessage error={providers.error} onRetry={() => void providers.refetch()} /></Page>;
  if (connections.isError) return <Page title={t('providers.title')}><ErrorMessage error={connections.error} onRetry={() => void connections.refetch()} /></Page>;
  const byId = new Map(connections.data.connections.map((c) => [c.providerId, c]));
  const list = providers.data.providers;
  // Connections a job found logged out that no login flow could renew (SESSION_EXPIRED, docs/sessions.md).
  const expired = connections.data.connections.filter((c) => c.status === 'expired');
  return (
    <Page title={t('providers.title')}>
      <p className="intro">{t('providers.intro')}</p>
      {expired.length > 0 && (
        <p className="alert alert-error">{t('providers.attention', { count: expired.length, names: expired.map((c) => list.find((p) => p.id === c.providerId)?.displayName ?? c.providerName).join(', ') })}</p>
      )}
      <p role="status" className="notice">{notice}</p>
      {disconnect.isError && <ErrorMessage error={disconnect.error} />}
      {list.length === 0 ? <EmptyState>{t('providers.empty')}</EmptyState> : (
        <ul className="cards">
          {list.map((p) => {
            const c = byId.get(p.id);
            const headingId = `provider-${p.id}`;
            return (
              <li key={p.id} className="card" aria-labelledby={headingId}>
                <h2 id={headingId}>{p.displayName}</h2>
                <dl className="facts">
                  <dt>{t('providers.hosts')}</dt>
                  <dd>{p.allowedHosts.map((h) => <code key={h}>{h}</code>)}</dd>
                  <dt>{t('providers.status')}</dt>
                  <dd>{!c ? t('providers.notConnected')
                    : c.status === 'expired' ? <strong className="attention">{t('providers.expired', { date: f.dateTime(c.expiredAt ?? c.connectedAt) })}</strong>
                      : <span className="ok">{t('providers.connected', { date: f.dateTime(c.expiresAt) })}</span>}</dd>
                  <ProviderHealthFacts provider={p} />
                </dl>
                <div className="actions">
                  <button type="button" aria-expanded={connecting === p.id} aria-controls={`connect-${p.id}`}
                    onClick={() => setConnecting(connecting === p.id ? undefined : p.id)}>
                    {c ? t('providers.reconnect') : t('providers.connect')}
                  </button>
                  {c && (
                    <button type="button" className="danger" disabled={disconnect.isPending} onClick={() => disconnect.mutate(p.id)}>
                      {t('providers.disconnect')}
                    </button>
                  )}
                </div>
                {connecting === p.id && (
                  <ConnectForm id={`connect-${p.id}`} provider={p} onDone={(expiresAt) => {
                    setConnecting(undefined);
                    setNotice(t('providers.connectedOk', { name: p.displayName, date: f.dateTime(expiresAt) }));
                    void client.invalidateQueries({ queryKey: CONNECTIONS_KEY });
                  }} onCancel={() => setConnecting(undefined)} />
                )}
              </li>
            );
          })}
        </ul>
      )}
    </Page>
  );
}

/** The organisation's flows by provider: every version, which one is active, activate, run the active one. */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router';
import { api, ok } from '../../api/client.ts';
import { EmptyState } from '../../components/empty-state.tsx';
import { ErrorMessage } from '../../components/error-message.tsx';
import { Loading } from '../../components/loading.tsx';
import { Page } from '../../components/page.tsx';
import { useFormat } from '../../lib/format.ts';
import { useProviders } from '../providers/providers-page.tsx';
import { RunForm } from '../flow/run-form.tsx';

export const FLOWS_KEY = ['flows'] as const;

export function useActivate() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => ok(api.POST('/api/flows/{id}/activate', { params: { path: { id } } })),
    onSuccess: () => void client.invalidateQueries({ queryKey: FLOWS_KEY }),
  });
}

export default function FlowsPage() {
  const { t } = useTranslation();
  const f = useFormat();
  const flows = useQuery({ queryKey: FLOWS_KEY, queryFn: () => ok(api.GET('/api/flows')) });
  const providers = useProviders();
  const activate = useActivate();
  const [notice, setNotice] = useState('');
  const newFlow = <Link className="button primary" to="/flows/new">{t('flows.create')}</Link>;

  if (flows.isPending) return <Page title={t('flows.title')}><Loading /></Page>;
  if (flows.isError) return <Page title={t('flows.title')}><ErrorMessage error={flows.error} onRetry={() => void flows.refetch()} /></Page>;
  const providerName = (id: string) => providers.data?.providers.find((p) => p.id === id)?.displayName ?? id;
  const hasDemo = providers.data?.providers.some((p) => p.id === 'demo') ?? false;
  const byProvider = new Map<string, typeof flows.data.flows>();
  for (const flow of flows.data.flows) byProvider.set(flow.providerId, [...(byProvider.get(flow.providerId) ?? []), flow]);

  return (
    <Page title={t('flows.title')} actions={newFlow}>
      <p className="intro">{t('flows.intro')}</p>
      <p role="status" className="notice">{notice}</p>
      {activate.isError && <ErrorMessage error={activate.error} />}
      {byProvider.size === 0 ? (
        <EmptyState action={<>{newFlow}{hasDemo && <> <Link className="button" to="/flows/new?template=demo">{t('flows.fromDemoTemplate')}</Link></>}</>}>
          {t('flows.empty')}
        </EmptyState>
      ) : [...byProvider].map(([providerId, versions]) => {
        const active = versions.find((v) => v.active);
        const headingId = `flows-${providerId}`;
        return (
          <section key={providerId} className="card" aria-labelledby={headingId}>
            <h2 id={headingId}>{providerName(providerId)}</h2>
            <div className="table-wrap" role="region" aria-label={`${t('flows.versions')}: ${providerName(providerId)}`} tabIndex={0}>
            <table>
              <caption className="visually-hidden">{t('flows.versions')}</caption>
              <thead>
                <tr>
                  <th scope="col">{t('flows.name')}</th>
                  <th scope="col">{t('flows.version')}</th>
                  <th scope="col">{t('flows.active')}</th>
                  <th scope="col">{t('flows.createdAt')}</th>
                  <th scope="col"><span className="visually-hidden">{t('flows.activate')}</span></th>
                </tr>
              </thead>
              <tbody>
                {versions.map((v) => (
                  <tr key={v.id}>
                    <td><Link to={`/flows/${v.id}`} aria-label={t('flows.open', { name: v.name, version: v.version })}>{v.name}</Link></td>
                    <td>{v.version}</td>
                    <td>{v.active ? <span className="badge badge-done">{t('flows.isActive')}</span> : t('flows.notActive')}</td>
                    <td>{f.dateTime(v.createdAt)}</td>
                    <td>
                      {!v.active && (
                        <button type="button" disabled={activate.isPending} aria-label={`${t('flows.activate')} ${v.name} ${v.version}`}
                          onClick={() => activate.mutate(v.id, { onSuccess: () => setNotice(t('flows.activated', { version: v.version, provider: providerName(providerId) })) })}>
                          {t('flows.activate')}
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            </div>
            {active && <RunForm providerId={providerId} draftKey={`run:${providerId}`} />}
          </section>
        );
      })}
    </Page>
  );
}

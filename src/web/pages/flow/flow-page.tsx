/** One flow: its steps, the generated script (read-only) with its hash, activate, and run when it is active. */
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useParams } from 'react-router';
import { api, ok } from '../../api/client.ts';
import { ErrorMessage } from '../../components/error-message.tsx';
import { Loading } from '../../components/loading.tsx';
import { Page } from '../../components/page.tsx';
import { useFormat } from '../../lib/format.ts';
import { useActivate } from '../flows/flows-page.tsx';
import { useProviders } from '../providers/providers-page.tsx';
import { RunForm } from './run-form.tsx';
import { SchedulesSection } from './schedules-section.tsx';

export default function FlowPage() {
  const { t } = useTranslation();
  const f = useFormat();
  const { id = '' } = useParams();
  const flow = useQuery({ queryKey: ['flows', id], queryFn: () => ok(api.GET('/api/flows/{id}', { params: { path: { id } } })) });
  const providers = useProviders();
  const activate = useActivate();
  const [notice, setNotice] = useState('');
  if (flow.isPending) return <Page title={t('flows.title')}><Loading /></Page>;
  if (flow.isError) return <Page title={t('flows.title')}><ErrorMessage error={flow.error} onRetry={() => void flow.refetch()} /></Page>;
  const fl = flow.data.flow;
  const providerName = providers.data?.providers.find((p) => p.id === fl.providerId)?.displayName ?? fl.providerId;
  return (
    <Page title={`${fl.name} ${fl.version}`} actions={<Link to={`/flows/new?from=${fl.id}`} className="button">{t('flows.create')}</Link>}>
      <p><Link to="/flows">{t('flows.title')}</Link></p>
      <dl className="facts">
        <dt>{t('flows.provider')}</dt><dd>{providerName}</dd>
        <dt>{t('flows.version')}</dt><dd>{fl.version}</dd>
        <dt>{t('flows.active')}</dt><dd>{fl.active ? t('common.yes') : t('common.no')}</dd>
        <dt>{t('flows.createdAt')}</dt><dd>{f.dateTime(fl.createdAt)}</dd>
        <dt>{t('flows.scriptHash')}</dt><dd><code className="hash">{fl.scriptHash}</code></dd>
      </dl>
      <p role="status" className="notice">{notice}</p>
      {activate.isError && <ErrorMessage error={activate.error} />}
      {!fl.active && (
        <button type="button" className="primary" disabled={activate.isPending}
          onClick={() => activate.mutate(fl.id, { onSuccess: () => { setNotice(t('flows.activated', { version: fl.version, provider: providerName })); void flow.refetch(); } })}>
          {t('flows.activate')}
        </button>
      )}
      {fl.active && <section className="card" aria-labelledby="run-heading"><h2 id="run-heading">{t('flows.run')}</h2><RunForm providerId={fl.providerId} draftKey={`run:${fl.providerId}`} /></section>}
      <SchedulesSection flow={fl} />
      <section aria-labelledby="steps-heading">
        <h2 id="steps-heading">{t('flows.steps')}</h2>
        <ol className="steps-readonly">
          {fl.steps.map((s, i) => <li key={i}><code>{JSON.stringify(s)}</code></li>)}
        </ol>
      </section>
      <section aria-labelledby="script-heading">
        <h2 id="script-heading">{t('flows.script')}</h2>
        <pre className="code" tabIndex={0} aria-labelledby="script-heading"><code>{fl.script}</code></pre>
      </section>
    </Page>
  );
}

/**
 * A provider's pacing and health on its card of the providers page (docs/providers.md): the circuit breaker's state
 * (GET /api/providers/{id}/health, refreshed every 10 s), a maintenance window in force, and the pacing the operator
 * set (spacing, requests per minute, maintenance windows on the portal's clock). Rendered as rows of the card's list.
 */
import { useQuery } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { api, ok } from '../../api/client.ts';
import type { components } from '../../api/schema.d.ts';
import { useFormat } from '../../lib/format.ts';

type Provider = components['schemas']['Provider'];

export const providerHealthKey = (id: string) => ['providers', id, 'health'] as const;

export function ProviderHealthFacts({ provider }: { provider: Provider }) {
  const { t } = useTranslation();
  const f = useFormat();
  const health = useQuery({
    queryKey: providerHealthKey(provider.id),
    queryFn: () => ok(api.GET('/api/providers/{id}/health', { params: { path: { id: provider.id } } })),
    refetchInterval: 10_000,
  });
  const pacing = provider.pacing;
  const rules: string[] = [];
  if (pacing.minSpacingMs !== undefined) rules.push(t('providers.pacing.spacing', { duration: f.durationMs(pacing.minSpacingMs), jitter: f.durationMs(pacing.jitterMs ?? 0) }));
  if (pacing.requestsPerMinute !== undefined) rules.push(t('providers.pacing.rpm', { count: pacing.requestsPerMinute }));
  for (const w of pacing.maintenanceWindows ?? []) {
    const days = w.days ? w.days.map((d) => t(`providers.pacing.days.${d}`)).join(', ') : t('providers.pacing.everyDay');
    rules.push(t('providers.pacing.window', { days, start: w.start, end: w.end, timezone: w.timezone }));
  }
  const h = health.data;
  const breakerText = !h ? t('providers.health.loading')
    : !h.breaker.enabled ? t('providers.health.breakerOff')
      : h.breaker.state === 'open' ? t('providers.health.breakerOpen', { count: h.breaker.consecutiveFailures, date: f.dateTime(h.breaker.openUntil) })
        : h.breaker.state === 'half_open' ? t('providers.health.breakerHalfOpen')
          : t('providers.health.breakerClosed', { count: h.breaker.consecutiveFailures });
  return (
    <>
      <dt>{t('providers.pacing.title')}</dt>
      <dd>{rules.length ? <ul>{rules.map((r) => <li key={r}>{r}</li>)}</ul> : t('providers.pacing.none')}</dd>
      <dt>{t('providers.health.breaker')}</dt>
      <dd>
        {health.isError ? t('providers.health.unavailable')
          : <span className={h?.breaker.state === 'open' ? 'badge badge-failed' : h?.breaker.state === 'half_open' ? 'badge badge-retrying' : 'ok'} data-breaker={h?.breaker.state}>{breakerText}</span>}
      </dd>
      {h?.maintenance.active && (
        <>
          <dt>{t('providers.health.maintenance')}</dt>
          <dd><span className="badge badge-queued">{t('providers.health.maintenanceUntil', { date: f.dateTime(h.maintenance.endsAt) })}</span></dd>
        </>
      )}
    </>
  );
}

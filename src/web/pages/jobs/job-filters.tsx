/**
 * The jobs list's filters, kept in the URL: `status` (repeated, one per status), `provider`, `from` and `to` (days,
 * YYYY-MM-DD, in the user's time zone, both included). Any change goes back to the first page.
 */
import { useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import type { SetURLSearchParams } from 'react-router';
import type { paths } from '../../api/client.ts';

type JobsQuery = NonNullable<paths['/api/jobs']['get']['parameters']['query']>;
type FilterStatus = Extract<NonNullable<JobsQuery['status']>, string>;

/** The statuses the API filters by, in the order a user thinks of them. */
export const FILTER_STATUSES: readonly FilterStatus[] = ['queued', 'running', 'retrying', 'done', 'failed', 'cancelled', 'dead'];
const isFilterStatus = (s: string): s is FilterStatus => (FILTER_STATUSES as readonly string[]).includes(s);
const DAY = /^\d{4}-\d{2}-\d{2}$/;

export interface Filters { statuses: FilterStatus[]; provider?: string; from?: string; to?: string }

export function filtersFrom(params: URLSearchParams): Filters {
  const day = (k: string) => { const v = params.get(k) ?? ''; return DAY.test(v) ? v : undefined; };
  const provider = params.get('provider') || undefined;
  const from = day('from');
  const to = day('to');
  return {
    statuses: params.getAll('status').filter(isFilterStatus),
    ...(provider ? { provider } : {}), ...(from ? { from } : {}), ...(to ? { to } : {}),
  };
}

export const hasFilters = (f: Filters) => f.statuses.length > 0 || !!f.provider || !!f.from || !!f.to;

/** 00:00 of a day in the browser's time zone, as an instant. */
function startOfDay(day: string, plusDays = 0): string {
  const [y, m, d] = day.split('-').map(Number) as [number, number, number];
  return new Date(y, m - 1, d + plusDays).toISOString();
}

/** The filters as GET /api/jobs takes them. */
export function filterQuery(f: Filters): Pick<JobsQuery, 'status' | 'providerId' | 'from' | 'to'> {
  return {
    ...(f.statuses.length ? { status: f.statuses } : {}),
    ...(f.provider ? { providerId: f.provider } : {}),
    ...(f.from ? { from: startOfDay(f.from) } : {}),
    // The last day is included: up to the next day's 00:00 (exclusive).
    ...(f.to ? { to: startOfDay(f.to, 1) } : {}),
  };
}

export function JobFilters({ params, setParams, providers }: {
  params: URLSearchParams; setParams: SetURLSearchParams; providers: readonly { id: string; displayName: string }[];
}) {
  const { t } = useTranslation();
  // The controls show what was chosen at once; the URL (which the list follows) is updated with it. Controlled by
  // the URL alone, a check box would spring back until the navigation lands.
  const fromUrl = filtersFrom(params);
  const urlKey = JSON.stringify(fromUrl);
  const [f, setF] = useState<Filters>(fromUrl);
  useEffect(() => setF(JSON.parse(urlKey) as Filters), [urlKey]);
  const update = (chosen: Filters) => {
    setF(chosen);
    setParams((prev) => {
      const next = new URLSearchParams(prev);
      next.delete('page');
      next.delete('status');
      for (const s of chosen.statuses) next.append('status', s);
      for (const [k, v] of [['provider', chosen.provider], ['from', chosen.from], ['to', chosen.to]] as const) {
        if (v) next.set(k, v);
        else next.delete(k);
      }
      return next;
    });
  };
  const toggle = (s: FilterStatus, on: boolean) => update({ ...f, statuses: on ? [...f.statuses.filter((x) => x !== s), s] : f.statuses.filter((x) => x !== s) });
  const set = (k: 'provider' | 'from' | 'to', v: string) => update({ ...f, [k]: v || undefined });
  return (
    <form className="card filters" aria-label={t('jobs.filters')} onSubmit={(e) => e.preventDefault()}>
      <fieldset className="inline">
        <legend>{t('jobs.status')}</legend>
        {FILTER_STATUSES.map((s) => (
          <label key={s} className="choice">
            <input type="checkbox" checked={f.statuses.includes(s)} onChange={(e) => toggle(s, e.target.checked)} />
            {' '}{t(`jobs.statuses.${s}`)}
          </label>
        ))}
      </fieldset>
      <div className="row">
        <label>
          <span>{t('jobs.provider')}</span>
          <select value={f.provider ?? ''} onChange={(e) => set('provider', e.target.value)}>
            <option value="">{t('jobs.anyProvider')}</option>
            {providers.map((p) => <option key={p.id} value={p.id}>{p.displayName}</option>)}
          </select>
        </label>
        <label>
          <span>{t('jobs.from')}</span>
          <input type="date" value={f.from ?? ''} max={f.to} onChange={(e) => set('from', e.target.value)} />
        </label>
        <label>
          <span>{t('jobs.to')}</span>
          <input type="date" value={f.to ?? ''} min={f.from} onChange={(e) => set('to', e.target.value)} />
        </label>
        {hasFilters(f) && <button type="button" className="link" onClick={() => setParams(new URLSearchParams())}>{t('jobs.clearFilters')}</button>}
      </div>
    </form>
  );
}

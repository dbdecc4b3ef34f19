/**
 * The documents list's filters, kept in the URL: `month` (YYYY-MM) or `from`/`to` (days, both included) for the
 * period of issue, `type`, `ruc` (the issuer's 13 digits) and `q` (text in the issuer's name, the document number or
 * the access key). Choosing a month clears from/to and the other way round; any change goes back to the first page.
 */
import { useEffect, useRef, useState } from 'react';
import { useTranslation } from 'react-i18next';
import type { SetURLSearchParams } from 'react-router';
import type { paths } from '../../api/client.ts';

type DocumentsQuery = NonNullable<paths['/api/documents']['get']['parameters']['query']>;
export type DocumentType = NonNullable<DocumentsQuery['type']>;
export const DOCUMENT_TYPES: readonly DocumentType[] = ['factura', 'notaCredito', 'notaDebito', 'retencion', 'liquidacionCompra', 'guiaRemision'];
const isType = (s: string): s is DocumentType => (DOCUMENT_TYPES as readonly string[]).includes(s);
const DAY = /^\d{4}-\d{2}-\d{2}$/;
const MONTH = /^\d{4}-(0[1-9]|1[0-2])$/;
export const RUC = /^\d{13}$/;

export interface DocumentFilters { month?: string; from?: string; to?: string; type?: DocumentType; ruc?: string; q?: string }
type Key = keyof DocumentFilters;
const KEYS: readonly Key[] = ['month', 'from', 'to', 'type', 'ruc', 'q'];

export function documentFiltersFrom(params: URLSearchParams): DocumentFilters {
  const f: DocumentFilters = {};
  const month = params.get('month') ?? '';
  const from = params.get('from') ?? '';
  const to = params.get('to') ?? '';
  const type = params.get('type') ?? '';
  const ruc = params.get('ruc') ?? '';
  const q = params.get('q') ?? '';
  if (MONTH.test(month)) f.month = month;
  else {
    if (DAY.test(from)) f.from = from;
    if (DAY.test(to)) f.to = to;
  }
  if (isType(type)) f.type = type;
  if (ruc) f.ruc = ruc;
  if (q) f.q = q.slice(0, 100);
  return f;
}

export const hasDocumentFilters = (f: DocumentFilters) => KEYS.some((k) => f[k] !== undefined);

/** The filters as GET /api/documents (and its export) take them; a RUC still being typed is not sent. */
export function documentQuery(f: DocumentFilters): Pick<DocumentsQuery, 'year' | 'month' | 'from' | 'to' | 'type' | 'issuerRuc' | 'q'> {
  const [year, month] = f.month ? f.month.split('-').map(Number) as [number, number] : [];
  return {
    ...(year !== undefined && month !== undefined ? { year, month } : {}),
    ...(f.from ? { from: f.from } : {}), ...(f.to ? { to: f.to } : {}),
    ...(f.type ? { type: f.type } : {}),
    ...(f.ruc && RUC.test(f.ruc) ? { issuerRuc: f.ruc } : {}),
    ...(f.q?.trim() ? { q: f.q.trim() } : {}),
  };
}

/** The same, as a query string (the export's link). */
export function documentQueryString(f: DocumentFilters): URLSearchParams {
  const out = new URLSearchParams();
  for (const [k, v] of Object.entries(documentQuery(f))) if (v !== undefined) out.set(k, String(v));
  return out;
}

/** The filters as the URL's parameters say them (what documentFiltersFrom reads back). */
function paramsOf(f: DocumentFilters): URLSearchParams {
  const out = new URLSearchParams();
  for (const k of KEYS) if (f[k]) out.set(k, f[k]);
  return out;
}

export function DocumentFiltersForm({ params, setParams }: { params: URLSearchParams; setParams: SetURLSearchParams }) {
  const { t } = useTranslation();
  // The fields show what was typed at once; the URL (which the list follows) is updated with it.
  const fromUrl = documentFiltersFrom(params);
  const urlKey = JSON.stringify(fromUrl);
  const [f, setF] = useState<DocumentFilters>(fromUrl);
  // The URL follows the fields one change at a time, and may still show an earlier change while the person types on:
  // such an echo of our own must not put an older text back into the field (typed characters would be lost). Only
  // a URL this form did not write (back, forward, "Clear filters") replaces what the fields show.
  const written = useRef<string[]>([]);
  useEffect(() => {
    const i = written.current.indexOf(urlKey);
    if (i >= 0) {
      written.current = written.current.slice(i + 1);
      return;
    }
    written.current = [];
    setF(JSON.parse(urlKey) as DocumentFilters);
  }, [urlKey]);
  const update = (chosen: DocumentFilters) => {
    setF(chosen);
    written.current.push(JSON.stringify(documentFiltersFrom(paramsOf(chosen))));
    setParams((prev) => {
      const next = new URLSearchParams(prev);
      next.delete('page');
      for (const k of KEYS) {
        const v = chosen[k];
        if (v) next.set(k, v);
        else next.delete(k);
      }
      return next;
    }, { replace: true });
  };
  const set = (k: Key, v: string) => {
    const chosen: DocumentFilters = { ...f, [k]: v || undefined };
    // A month and a range are two ways to say a period: the one chosen last counts.
    if (k === 'month' && v) { delete chosen.from; delete chosen.to; }
    if ((k === 'from' || k === 'to') && v) delete chosen.month;
    update(chosen);
  };
  const rucInvalid = !!f.ruc && !RUC.test(f.ruc);
  return (
    <form className="card filters" aria-label={t('documents.filters')} onSubmit={(e) => e.preventDefault()}>
      <div className="row">
        <label>
          <span>{t('documents.month')}</span>
          <input type="month" value={f.month ?? ''} onChange={(e) => set('month', e.target.value)} />
        </label>
        <label>
          <span>{t('documents.from')}</span>
          <input type="date" value={f.from ?? ''} max={f.to} onChange={(e) => set('from', e.target.value)} />
        </label>
        <label>
          <span>{t('documents.to')}</span>
          <input type="date" value={f.to ?? ''} min={f.from} onChange={(e) => set('to', e.target.value)} />
        </label>
        <label>
          <span>{t('documents.type')}</span>
          <select value={f.type ?? ''} onChange={(e) => set('type', e.target.value)}>
            <option value="">{t('documents.anyType')}</option>
            {DOCUMENT_TYPES.map((d) => <option key={d} value={d}>{t(`documents.types.${d}`)}</option>)}
          </select>
        </label>
      </div>
      <div className="row">
        <label>
          <span>{t('documents.issuerRuc')}</span>
          <input type="text" inputMode="numeric" autoComplete="off" maxLength={13} value={f.ruc ?? ''} aria-invalid={rucInvalid}
            aria-describedby="documents-ruc-hint" onChange={(e) => set('ruc', e.target.value.replace(/\D/g, ''))} />
          <small id="documents-ruc-hint" className={rucInvalid ? 'field-error' : 'hint'}>{t('documents.rucHint')}</small>
        </label>
        <label>
          <span>{t('documents.search')}</span>
          <input type="search" autoComplete="off" maxLength={100} value={f.q ?? ''} aria-describedby="documents-search-hint"
            onChange={(e) => set('q', e.target.value)} />
          <small id="documents-search-hint" className="hint">{t('documents.searchHint')}</small>
        </label>
        {hasDocumentFilters(f) && <button type="button" className="link" onClick={() => setParams(new URLSearchParams())}>{t('documents.clearFilters')}</button>}
      </div>
    </form>
  );
}

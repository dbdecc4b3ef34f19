/**
 * The organisation's SRI documents (one per access key, docs/documents.md), newest issue date first, paged and
 * filtered; filters and page live in the URL (`?month=2026-11&type=factura&ruc=1790011111001&q=martillo&page=2`).
 * Above the table, the totals of every document the filters match (all pages), and the export buttons, which
 * download the same set as a ledger (CSV, XLSX). Amounts are the API's exact decimal strings, shown through Intl.
 */
import { keepPreviousData, useMutation, useQuery } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useSearchParams } from 'react-router';
import { api, ok, toApiError } from '../../api/client.ts';
import { EmptyState } from '../../components/empty-state.tsx';
import { ErrorMessage } from '../../components/error-message.tsx';
import { Loading } from '../../components/loading.tsx';
import { Page } from '../../components/page.tsx';
import { useFormat } from '../../lib/format.ts';
import { DocumentFiltersForm, documentFiltersFrom, documentQuery, documentQueryString, hasDocumentFilters } from './document-filters.tsx';
import { Pager } from '../../components/pager.tsx';

const PAGE_SIZE = 20;
type Format = 'csv' | 'xlsx';

/** Downloads the export through fetch, so that an error answer is shown on the page rather than saved as the file. */
async function download(query: URLSearchParams, format: Format): Promise<void> {
  query.set('format', format);
  const r = await fetch(`/api/documents/export?${query.toString()}`, { credentials: 'same-origin' });
  if (!r.ok) throw toApiError(r.status, await r.json().catch(() => undefined));
  const name = /filename="([^"]+)"/.exec(r.headers.get('content-disposition') ?? '')?.[1] ?? `comprobantes.${format}`;
  const url = URL.createObjectURL(await r.blob());
  try {
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
  } finally {
    // After the click has handed the file to the browser's download.
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}

/** The XML of one document: its presigned link comes with the document's detail. */
async function openXml(claveAcceso: string, noXml: string): Promise<void> {
  const { document: doc } = await ok(api.GET('/api/documents/{claveAcceso}', { params: { path: { claveAcceso } } }));
  if (!doc.xml) throw new Error(noXml);
  window.location.assign(doc.xml.url);
}

export default function DocumentsPage() {
  const { t } = useTranslation();
  const f = useFormat();
  const [params, setParams] = useSearchParams();
  const page = Math.max(1, Number.parseInt(params.get('page') ?? '1', 10) || 1);
  const filters = documentFiltersFrom(params);
  const query = documentQuery(filters);
  const money = useMemo(() => new Intl.NumberFormat(f.locale, { minimumFractionDigits: 2, maximumFractionDigits: 6 }), [f.locale]);
  // Intl formats a decimal string exactly (no trip through a float).
  const amount = (s: string) => money.format(s as Intl.StringNumericLiteral);
  const docs = useQuery({
    queryKey: ['documents', { page, ...query }],
    queryFn: () => ok(api.GET('/api/documents', { params: { query: { page, pageSize: PAGE_SIZE, ...query } } })),
    placeholderData: keepPreviousData,
  });
  const [exporting, setExporting] = useState<Format | undefined>();
  const exportMutation = useMutation({
    mutationFn: (format: Format) => { setExporting(format); return download(documentQueryString(filters), format); },
    onSettled: () => setExporting(undefined),
  });
  const xml = useMutation({ mutationFn: (clave: string) => openXml(clave, t('documents.noXml')) });
  const goTo = (p: number) => setParams((prev) => {
    const next = new URLSearchParams(prev);
    if (p <= 1) next.delete('page');
    else next.set('page', String(p));
    return next;
  });
  const filterForm = <DocumentFiltersForm params={params} setParams={setParams} />;

  if (docs.isPending) return <Page title={t('documents.title')}>{filterForm}<Loading /></Page>;
  if (docs.isError) return <Page title={t('documents.title')}>{filterForm}<ErrorMessage error={docs.error} onRetry={() => void docs.refetch()} /></Page>;
  const { total, totals } = docs.data;
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  const exportButtons = (
    <div className="button-row" role="group" aria-label={t('documents.export')}>
      {(['csv', 'xlsx'] as const).map((format) => (
        <button key={format} type="button" disabled={exportMutation.isPending} onClick={() => exportMutation.mutate(format)}>
          {exporting === format ? t('documents.exporting') : t(`documents.export_${format}`)}
        </button>
      ))}
    </div>
  );
  return (
    <Page title={t('documents.title')} actions={total > 0 ? exportButtons : undefined}>
      <p className="intro">{t('documents.intro')}</p>
      {filterForm}
      {exportMutation.isError && <ErrorMessage error={exportMutation.error} />}
      {xml.isError && <ErrorMessage error={xml.error} />}
      {total === 0 && hasDocumentFilters(filters) ? (
        <EmptyState action={<Link className="button" to="/documents">{t('documents.clearFilters')}</Link>}>{t('documents.emptyFiltered')}</EmptyState>
      ) : total === 0 ? (
        <EmptyState action={<Link className="button" to="/flows">{t('nav.flows')}</Link>}>{t('documents.empty')}</EmptyState>
      ) : (
        <>
          <section className="card" aria-labelledby="documents-totals">
            <h2 id="documents-totals">{t('documents.totals')}</h2>
            <dl className="facts" aria-live="polite">
              <dt>{t('documents.count')}</dt><dd>{f.number(totals.count)}</dd>
              <dt>{t('documents.subtotal')}</dt><dd>{amount(totals.subtotal)}</dd>
              <dt>{t('documents.iva')}</dt><dd>{amount(totals.iva)}</dd>
              <dt>{t('documents.total')}</dt><dd>{amount(totals.importeTotal)}</dd>
              <dt>{t('documents.withheld')}</dt><dd>{amount(totals.retenido)}</dd>
            </dl>
          </section>
          <div className="table-wrap" role="region" aria-label={t('documents.title')} tabIndex={0}>
            <table>
              <thead>
                <tr>
                  <th scope="col">{t('documents.date')}</th>
                  <th scope="col">{t('documents.type')}</th>
                  <th scope="col">{t('documents.number')}</th>
                  <th scope="col">{t('documents.issuer')}</th>
                  <th scope="col" className="num">{t('documents.subtotal')}</th>
                  <th scope="col" className="num">{t('documents.iva')}</th>
                  <th scope="col" className="num">{t('documents.total')}</th>
                  <th scope="col" className="num">{t('documents.withheld')}</th>
                  <th scope="col">{t('documents.seen')}</th>
                  <th scope="col">{t('common.actions')}</th>
                </tr>
              </thead>
              <tbody>
                {docs.data.documents.map((d) => {
                  const number = `${d.serie}-${d.secuencial.padStart(9, '0')}`;
                  return (
                    <tr key={d.claveAcceso}>
                      <td>{f.date(`${d.fechaEmision}T12:00:00`)}</td>
                      <td>{t(`documents.types.${d.type}`)}{d.problems > 0 && <> <span className="badge badge-warn">{t('documents.problems', { count: d.problems })}</span></>}</td>
                      <td><code title={d.claveAcceso}>{number}</code></td>
                      <td>{d.issuer.razonSocial}<br /><small>{t('documents.ruc', { ruc: d.issuer.ruc })}</small></td>
                      <td className="num">{amount(d.subtotal)}</td>
                      <td className="num">{amount(d.iva)}</td>
                      <td className="num">{amount(d.importeTotal)}</td>
                      <td className="num">{amount(d.retenido)}</td>
                      <td>
                        {d.seenAgain === 0 ? t('documents.seenOnce') : t('documents.seenAgain', { count: d.seenAgain })}
                        <br /><Link to={`/jobs/${d.firstJobId}`} aria-label={t('documents.openJob', { number })}>{t('documents.job')}</Link>
                      </td>
                      <td>
                        <button type="button" className="link" disabled={xml.isPending} onClick={() => xml.mutate(d.claveAcceso)}
                          aria-label={t('documents.downloadXml', { number })}>XML</button>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
          <Pager page={page} pages={pages} goTo={goTo} />
        </>
      )}
    </Page>
  );
}

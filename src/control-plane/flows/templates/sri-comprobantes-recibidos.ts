/**
 * The `sri` provider's flow template "comprobantes recibidos" (issue 16 "The flow"), as steps data for the step
 * compiler (compile.ts): reuse the session or log in, choose the period and document type from the job's metadata
 * (`{year, month, type}`), search, walk every results page, keep each document's authorised XML under its access key
 * (`{claveAcceso}.xml`) — through the authorisation web service when the flow is built with its URL, else by the
 * row's XML link — and the search's report of access keys.
 *
 * Verified end to end against the SRI portal imitation (src/embedded/sri-portal/, docs/sri.md; test/e2e/sri-pack.test.ts):
 * its paths (SRI_PORTAL_PATHS, the real portal's, under `/sri`), ids and option values. Metadata: `year` (e.g. 2026),
 * `month` 1–12 (no leading zero), `type` by name (factura, liquidacionCompra, notaCredito, notaDebito, retencion) or
 * by the value of `#cmbTipoComprobante` (SRI_TYPE_CODES: 1 factura, 2 liquidación de compra, 3 nota de crédito,
 * 4 nota de débito, 6 retención). A job keeps one file per document plus
 * the report: a month of more than WORKER_MAX_DOWNLOADS − 1 documents (default 50) needs that limit raised.
 */

/** The portal's paths, relative to its origin (the imitation's SRI_PATHS, src/embedded/sri-portal/index.ts). */
export const SRI_PORTAL_PATHS = {
  login: '/sri/auth/login',
  recibidos: '/sri/comprobantes-electronicos-internet/pages/consultas/recibidos/comprobantesRecibidos.jsf',
  autorizacion: '/sri/comprobantes-electronicos-ws/AutorizacionComprobantesOffline',
} as const;

/** The values of the portal's `#cmbTipoComprobante` (the job's `type`) by the parser's `tipo`. */
export const SRI_TYPE_CODES = { factura: '1', liquidacionCompra: '2', notaCredito: '3', notaDebito: '4', retencion: '6' } as const;

/** What the template expects of the portal's pages (docs/sri.md "The imitation of the portal"). */
export const SRI_SELECTORS = {
  loginForm: 'form#kc-form-login',
  user: '#usuario',
  password: '#password',
  /** The optional "additional CI" field of the login form. */
  ci: '#ciAdicional',
  loginSubmit: '#kc-login',
  searchForm: 'form#frmPrincipal',
  year: '#ano',
  month: '#mes',
  day: '#dia',
  type: '#cmbTipoComprobante',
  search: '#btnRecaptcha',
  /** The search's invisible CAPTCHA: a person (or the solver) gets past it. */
  captcha: '.g-recaptcha',
  /** What a search ends on: the results, the notice that there are none, or the portal's refusal. */
  outcome: '#tablaCompRecibidos, #sin-resultados, #consulta-error',
  results: '#tablaCompRecibidos',
  rows: 'tr.comprobante[data-clave]',
  /** In a row: its access key (an attribute of the row) and the link to its authorised XML. */
  claveAcceso: { attribute: 'data-clave' },
  xmlLink: 'a.xml',
  next: '#siguiente',
  report: '#lnkTxtlistado',
  noResults: '#sin-resultados',
} as const;

/** Names of the connection's credentials the login steps fill (POST /api/providers/{id}/connect {credentials}). */
export const SRI_SECRETS = { user: 'sriUser', password: 'sriPassword', ci: 'sriCi' } as const;

export interface SriTemplateOptions {
  /** Origin of the portal, e.g. `http://127.0.0.1:3100` for the imitation of `sri up`. */
  base: string;
  /**
   * The authorisation web service (SOAP `autorizacionComprobante`), e.g. `${base}${SRI_PORTAL_PATHS.autorizacion}`:
   * when given, each XML is fetched from it, not downloaded by its link. It must be on the provider's hosts.
   */
  authorisationUrl?: string;
  /** @default 100 — pages of results walked at most */
  maxPages?: number;
}

/** The SOAP request of `autorizacionComprobante` for the row's access key (a template of the step language). */
const AUTHORISATION_REQUEST = '<?xml version="1.0" encoding="UTF-8"?>'
  + '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ec="http://ec.gob.sri.ws.autorizacion">'
  + '<soapenv:Header/><soapenv:Body><ec:autorizacionComprobante>'
  + '<claveAccesoComprobante>{{row.claveAcceso}}</claveAccesoComprobante>'
  + '</ec:autorizacionComprobante></soapenv:Body></soapenv:Envelope>';

/** The steps of the template (for POST /api/flows {steps}); the flow compiles them against the `sri` provider's hosts. */
export function sriComprobantesRecibidosSteps(o: SriTemplateOptions): unknown[] {
  const base = o.base.replace(/\/+$/, '');
  const s = SRI_SELECTORS;
  const fetchXml = o.authorisationUrl === undefined
    ? { type: 'download', selector: s.xmlLink, saveAs: '{{row.claveAcceso}}.xml' }
    : {
        type: 'fetch', url: o.authorisationUrl, method: 'POST', contentType: 'text/xml; charset=utf-8',
        body: AUTHORISATION_REQUEST, saveAs: '{{row.claveAcceso}}.xml',
      };
  return [
    { type: 'navigate', url: `${base}${SRI_PORTAL_PATHS.recibidos}` },
    // The session of the connection is reused; without one the portal shows its login form (redirect back here).
    { type: 'ifExists', selector: s.loginForm, steps: [
      { type: 'fill', selector: s.user, secretRef: SRI_SECRETS.user },
      { type: 'fill', selector: s.password, secretRef: SRI_SECRETS.password },
      { type: 'click', selector: s.loginSubmit },
      // After a login the portal sends the browser back to the search page; opening it again lets the worker look
      // for a CAPTCHA on it, as it does after every navigation (a solver's token, else a person: docs/scripts.md).
      { type: 'waitFor', selector: s.searchForm },
      { type: 'navigate', url: `${base}${SRI_PORTAL_PATHS.recibidos}` },
    ] },
    { type: 'waitFor', selector: s.searchForm },
    { type: 'select', selector: s.year, value: '{{metadata.year}}' },
    { type: 'select', selector: s.month, value: '{{metadata.month}}' },
    { type: 'select', selector: s.day, value: '0' },
    // The type by name (factura, notaCredito…) or by the portal's own code ("1", "3"…).
    { type: 'select', selector: s.type, value: '{{metadata.type}}', values: { ...SRI_TYPE_CODES } },
    // The search's CAPTCHA, when the portal shows one, was answered when the page opened (the worker's check after a
    // navigation: the solver's token is in the form, or a person typed the answer in the live view).
    { type: 'click', selector: s.search },
    { type: 'waitFor', selector: s.outcome },
    { type: 'ifExists', selector: s.results, steps: [
      { type: 'download', selector: s.report, saveAs: 'reporte-{{metadata.year}}-{{metadata.month}}-{{metadata.type}}.txt' },
      { type: 'paginate', next: s.next, maxPages: o.maxPages ?? 100, steps: [
        { type: 'extract', name: 'comprobantes', selector: s.rows, fields: { claveAcceso: s.claveAcceso } },
        { type: 'forEach', selector: s.rows, fields: { claveAcceso: s.claveAcceso }, steps: [fetchXml] },
      ] },
    ], else: [{ type: 'screenshot', fullPage: true }] },
  ];
}

/** The flow as POST /api/flows takes it, for the `sri` provider. */
export function sriComprobantesRecibidosFlow(providerId: string, o: SriTemplateOptions): { providerId: string; name: string; version: string; description: string; steps: unknown[] } {
  return {
    providerId,
    name: 'comprobantes recibidos',
    version: '0.1.0',
    description: 'Received electronic documents of a period and type ({year, month 1–12, type 1|2|3|4|6} in the run\'s metadata): every page of results, each authorised XML as {claveAcceso}.xml, and the report.',
    steps: sriComprobantesRecibidosSteps(o),
  };
}

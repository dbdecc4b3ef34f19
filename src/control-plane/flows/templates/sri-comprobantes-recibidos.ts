/**
 * The `sri` provider's flow template "comprobantes recibidos" (issue 16 "The flow"), as steps data for the step
 * compiler (compile.ts): reuse the session or log in, choose the period and document type from the job's metadata
 * (`{year, month, type}`), search, walk every results page, keep each document's authorised XML under its access key
 * (`{claveAcceso}.xml`) — through the authorisation web service when the flow is built with its URL, else by the
 * row's XML link — and the page's report of access keys.
 *
 * UNVERIFIED: written against the URL contract of the SRI portal imitation (login form at /sri/login, search page at
 * /sri/comprobantes-recibidos) before the imitation existed. The selectors below (SRI_SELECTORS) follow the real
 * portal's JSF ids but are assumptions, as are the option values of the period and type selects (`month` 1–12 without
 * a leading zero, `day` 0 for the whole month, `type` the document type's name as the issue spells it). Check them
 * against the imitation, and run the template end to end, before it is offered as a built-in flow.
 */

/** What the template assumes of the portal's pages; one place to adapt when the imitation says otherwise. */
export const SRI_SELECTORS = {
  loginForm: 'form#kc-form-login',
  user: '#usuario',
  password: '#password',
  /** The optional "additional CI" field of the login form. */
  ci: '#ciAdicional',
  loginSubmit: '#kc-login',
  year: 'select[id="frmPrincipal:ano"]',
  month: 'select[id="frmPrincipal:mes"]',
  day: 'select[id="frmPrincipal:dia"]',
  type: 'select[id="frmPrincipal:cmbTipoComprobante"]',
  search: 'button[id="btnRecaptcha"]',
  /** Shown when the invisible CAPTCHA check of the search refuses the run: a person (or the solver) gets past it. */
  captcha: '.g-recaptcha, #captcha',
  results: 'table[id="frmPrincipal:tablaCompRecibidos"]',
  rows: 'table[id="frmPrincipal:tablaCompRecibidos"] tbody tr[data-ri]',
  /** In a row: the access key cell and the link to its authorised XML. */
  claveAcceso: 'td.clave-acceso',
  xmlLink: 'a[id$=":lnkXml"]',
  next: '.ui-paginator-next:not(.ui-state-disabled)',
  report: 'a[id="frmPrincipal:lnkTxtlistado"]',
  noResults: '.ui-datatable-empty-message',
} as const;

/** Names of the connection's credentials the login steps fill (POST /api/providers/{id}/connect {credentials}). */
export const SRI_SECRETS = { user: 'sriUser', password: 'sriPassword', ci: 'sriCi' } as const;

export interface SriTemplateOptions {
  /** Origin of the portal, e.g. `http://127.0.0.1:3100` for the imitation of `sri up`. */
  base: string;
  /**
   * The authorisation web service (SOAP `autorizacionComprobante`), e.g. `${base}/sri/ws/autorizacion` (an assumed
   * path): when given, each XML is fetched from it, not downloaded by its link. It must be on the provider's hosts.
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
    { type: 'navigate', url: `${base}/sri/comprobantes-recibidos` },
    // The session of the connection is reused; when it has expired the portal shows its login form instead.
    { type: 'ifExists', selector: s.loginForm, steps: [
      { type: 'fill', selector: s.user, secretRef: SRI_SECRETS.user },
      { type: 'fill', selector: s.password, secretRef: SRI_SECRETS.password },
      { type: 'click', selector: s.loginSubmit },
      { type: 'navigate', url: `${base}/sri/comprobantes-recibidos` },
    ] },
    { type: 'waitFor', selector: s.year },
    { type: 'select', selector: s.year, value: '{{metadata.year}}' },
    { type: 'select', selector: s.month, value: '{{metadata.month}}' },
    { type: 'select', selector: s.day, value: '0' },
    { type: 'select', selector: s.type, value: '{{metadata.type}}' },
    { type: 'click', selector: s.search },
    { type: 'ifExists', selector: s.captcha, timeoutMs: 2000, steps: [
      { type: 'handoff', reason: 'The SRI portal asks to prove a person is searching: solve the check, press Consultar, then Done.' },
    ] },
    { type: 'ifExists', selector: s.results, timeoutMs: 30_000, steps: [
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
    description: 'Received electronic documents of a period and type ({year, month, type} in the run\'s metadata): every page of results, each authorised XML as {claveAcceso}.xml, and the report. UNVERIFIED against the portal imitation.',
    steps: sriComprobantesRecibidosSteps(o),
  };
}

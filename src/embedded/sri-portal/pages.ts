/**
 * The SRI imitation's pages, in Spanish as the real portal's: plain HTML with no external assets (a job's browser
 * reaches only the job's allowed hosts). Element ids are the contract flows select on; docs/sri.md lists them.
 */
import type { SriTipo } from '../../sri/access-key.ts';
import type { SriGeneratedDocument } from '../../sri/generate.ts';
import { TIPO_LABEL } from './files.ts';

export const esc = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export function sriPage(title: string, body: string, user?: string): string {
  return `<!doctype html>
<html lang="es"><head><meta charset="utf-8"><title>${esc(title)} · SRI en línea</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;color:#222}header{background:#0b3d6e;color:#fff;padding:.6rem 1.2rem;display:flex;justify-content:space-between}
main{margin:1.2rem}h1{font-size:1.3rem}table{border-collapse:collapse;font-size:.85rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}
form.login{display:grid;gap:.5rem;max-width:20rem}.error{color:#b00}.aviso{color:#555}
</style></head>
<body><header><strong>SRI en línea</strong>${user ? `<span id="usuario-conectado">${esc(user)}</span>` : ''}</header>
<main><h1>${esc(title)}</h1>${body}</main></body></html>`;
}

/** A reCAPTCHA-shaped widget (the demo portal's signature: .g-recaptcha with a site key), with a typed answer for a person. */
export function captchaWidget(siteKey: string, invisible: boolean): string {
  return `<div class="g-recaptcha" id="captcha" data-sitekey="${esc(siteKey)}"${invisible ? ' data-size="invisible"' : ''}>
<textarea name="g-recaptcha-response" id="g-recaptcha-response" style="display:none"></textarea>
<label>Verificación: escriba <strong>human</strong> <input id="captcha-answer" name="answer" autocomplete="off"${invisible ? ' autofocus' : ''}></label>
</div>`;
}

export function loginForm(opts: { error?: string; captcha?: string; redirect?: string }): string {
  return `${opts.error ? `<p class="error" id="login-error">${esc(opts.error)}</p>` : ''}
<form method="post" action="/sri/auth/login" id="kc-form-login" class="login">
<input type="hidden" name="redirect" value="${esc(opts.redirect ?? '')}">
<label>RUC / C.I. / Pasaporte <input id="usuario" name="usuario" autocomplete="username"></label>
<label>C.I. adicional <input id="ciAdicional" name="ciAdicional" autocomplete="off"></label>
<label>Clave <input id="password" name="password" type="password" autocomplete="current-password"></label>
${opts.captcha ?? ''}
<button id="kc-login" name="login" type="submit">Ingresar</button>
</form>`;
}

export function homePage(razonSocial: string, recibidosUrl: string): string {
  return `<p id="bienvenida">Bienvenido, ${esc(razonSocial)}</p>
<nav><ul><li><a id="menu-comprobantes-recibidos" href="${esc(recibidosUrl)}">Comprobantes electrónicos recibidos</a></li></ul></nav>
<form method="post" action="/sri/auth/logout"><button id="cerrar-sesion" type="submit">Cerrar sesión</button></form>`;
}

/** The type select's options: the real portal's values. */
export const TIPO_OPTIONS: readonly { value: string; tipo: SriTipo }[] = [
  { value: '1', tipo: 'factura' },
  { value: '2', tipo: 'liquidacionCompra' },
  { value: '3', tipo: 'notaCredito' },
  { value: '4', tipo: 'notaDebito' },
  { value: '6', tipo: 'retencion' },
];

const MESES = ['Enero', 'Febrero', 'Marzo', 'Abril', 'Mayo', 'Junio', 'Julio', 'Agosto', 'Septiembre', 'Octubre', 'Noviembre', 'Diciembre'];

export interface SearchView {
  ano: number;
  mes: number;
  dia: number;
  tipo: string;
}

export interface ResultsView {
  readonly docs: readonly SriGeneratedDocument[];
  readonly page: number;
  readonly pages: number;
  readonly total: number;
  readonly pageSize: number;
}

export function recibidosPage(o: {
  action: string; search: SearchView; years: readonly number[]; captcha?: string; error?: string; results?: ResultsView;
  downloadUrl: (tipo: 'xml' | 'pdf', clave: string) => string; reportUrl: string;
}): string {
  const sel = (id: string, options: string) => `<select id="${id}" name="${id}">${options}</select>`;
  const opt = (value: string | number, label: string, selected: boolean) =>
    `<option value="${value}"${selected ? ' selected' : ''}>${esc(label)}</option>`;
  const form = `<form method="post" action="${esc(o.action)}" id="frmPrincipal">
<label>Año ${sel('ano', o.years.map((y) => opt(y, String(y), y === o.search.ano)).join(''))}</label>
<label>Mes ${sel('mes', MESES.map((m, i) => opt(i + 1, m, i + 1 === o.search.mes)).join(''))}</label>
<label>Día ${sel('dia', [opt(0, 'Todos', o.search.dia === 0), ...Array.from({ length: 31 }, (_, i) => opt(i + 1, String(i + 1), i + 1 === o.search.dia))].join(''))}</label>
<label>Tipo de comprobante ${sel('cmbTipoComprobante', TIPO_OPTIONS.map((t) => opt(t.value, TIPO_LABEL[t.tipo]!, t.value === o.search.tipo)).join(''))}</label>
${o.captcha ?? ''}
<button id="btnRecaptcha" type="submit">Consultar</button>
</form>
${o.error ? `<p class="error" id="consulta-error">${esc(o.error)}</p>` : ''}`;
  return form + (o.results ? resultsTable(o.results, o.downloadUrl, o.reportUrl, o.action) : '');
}

function resultsTable(r: ResultsView, downloadUrl: (tipo: 'xml' | 'pdf', clave: string) => string, reportUrl: string, action: string): string {
  if (r.total === 0) return '<p class="aviso" id="sin-resultados">No existen datos para los parámetros ingresados</p>';
  const first = (r.page - 1) * r.pageSize;
  const rows = r.docs.map((d, i) => `<tr class="comprobante" data-clave="${d.claveAcceso}">
<td class="nro">${first + i + 1}</td>
<td class="emisor"><span class="ruc">${d.emisor.ruc}</span> <span class="razon-social">${esc(d.emisor.razonSocial)}</span></td>
<td class="tipo-serie"><span class="tipo">${esc(TIPO_LABEL[d.tipo] ?? d.tipo)}</span> <span class="serie">${d.serie}-${d.secuencial}</span></td>
<td class="clave-acceso">${d.claveAcceso}</td>
<td class="fecha-autorizacion">${esc(d.fechaAutorizacion)}</td>
<td class="fecha-emision">${d.fechaEmision.split('-').reverse().join('/')}</td>
<td class="importe-total">${d.importeTotal}</td>
<td><a class="xml" href="${esc(downloadUrl('xml', d.claveAcceso))}">XML</a></td>
<td><a class="pdf" href="${esc(downloadUrl('pdf', d.claveAcceso))}">PDF</a></td>
</tr>`).join('\n');
  const links = Array.from({ length: r.pages }, (_, i) => i + 1).map((p) =>
    p === r.page ? `<span class="pagina actual" id="pagina-actual">${p}</span>` : `<a class="pagina" href="${esc(`${action}?pagina=${p}`)}">${p}</a>`).join(' ');
  const next = r.page < r.pages ? ` <a id="siguiente" class="siguiente" href="${esc(`${action}?pagina=${r.page + 1}`)}">Siguiente</a>` : '';
  const prev = r.page > 1 ? `<a id="anterior" class="anterior" href="${esc(`${action}?pagina=${r.page - 1}`)}">Anterior</a> ` : '';
  return `<p id="total-registros">${r.total} registros</p>
<table id="tablaCompRecibidos"><thead><tr><th>Nro</th><th>RUC y Razón social emisor</th><th>Tipo y serie de comprobante</th><th>Clave de acceso</th><th>Fecha y hora de autorización</th><th>Fecha emisión</th><th>Importe total</th><th>XML</th><th>PDF</th></tr></thead>
<tbody>
${rows}
</tbody></table>
<div id="paginacion">${prev}${links}${next}</div>
<p><a id="lnkTxtlistado" href="${esc(reportUrl)}">Descargar reporte</a></p>`;
}

export const MAINTENANCE_BODY = `<div id="mantenimiento"><p>Estimado contribuyente: el sistema se encuentra en mantenimiento programado.</p>
<p>Por favor intente más tarde. Disculpe las molestias ocasionadas.</p></div>`;

export const RATE_LIMIT_BODY = `<div id="demasiadas-solicitudes"><p>Ha realizado demasiadas solicitudes en poco tiempo.</p>
<p>Espere unos segundos e intente nuevamente.</p></div>`;

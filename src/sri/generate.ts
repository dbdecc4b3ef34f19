/**
 * Realistic SRI data, generated deterministically (issue 16): the documents an organisation received in a year, from
 * several issuers, in every type and version the parsers read — factura 1.0.0 and 1.1.0, nota de crédito 1.1.0,
 * nota de débito 1.0.0, comprobante de retención 1.0.0 and 2.0.0, liquidación de compra 1.1.0 — with access keys
 * whose check digits are right and amounts that add up.
 *
 * The same seed gives the same documents, byte for byte: the SRI imitation (src/embedded/sri-portal) serves them,
 * and tests compare what a flow fetched with sriDataset(seed). One month (SRI_BUSY_MONTH) holds enough documents
 * for three pages of the portal's results table.
 */
import { buildAccessKey, COD_DOC_OF, type SriTipo } from './access-key.ts';
import { mulberry32 } from '../shared/prng.ts';

/** The organisation that received the documents: the imitation's login user. */
export const SRI_DEMO_RECEPTOR = Object.freeze({ ruc: '1792146739001', razonSocial: 'ORGANIZACION DEMO S.A.', tipoIdentificacion: '04' });
export const SRI_DEFAULT_SEED = 2026;
export const SRI_DEFAULT_YEAR = 2026;
/**
 * The month with SRI_BUSY_MONTH_DOCUMENTS documents: every kind at least once, the rest facturas, so that its
 * facturas alone fill three pages of SRI_PAGE_SIZE (more than 40). Other months have 4–12 documents.
 */
export const SRI_BUSY_MONTH = 3;
export const SRI_BUSY_MONTH_DOCUMENTS = 60;
/** Rows per page of the imitation's results table. */
export const SRI_PAGE_SIZE = 20;

export interface SriIssuer {
  readonly ruc: string;
  readonly razonSocial: string;
  readonly nombreComercial?: string;
  readonly dirMatriz: string;
  readonly estab: string;
  readonly ptoEmi: string;
  readonly obligadoContabilidad: 'SI' | 'NO';
}

export const SRI_ISSUERS: readonly SriIssuer[] = Object.freeze([
  { ruc: '1790012345001', razonSocial: 'DISTRIBUIDORA ANDINA S.A.', nombreComercial: 'ANDINA', dirMatriz: 'Av. Amazonas N34-120, Quito', estab: '001', ptoEmi: '001', obligadoContabilidad: 'SI' },
  { ruc: '0991234567001', razonSocial: 'SERVICIOS COSTEROS CIA. LTDA.', dirMatriz: 'Av. 9 de Octubre 1204, Guayaquil', estab: '002', ptoEmi: '005', obligadoContabilidad: 'SI' },
  { ruc: '0190045678001', razonSocial: 'TECNOLOGIA PACIFICO S.A.', nombreComercial: 'TECPAC', dirMatriz: 'Calle Larga 7-45, Cuenca', estab: '001', ptoEmi: '003', obligadoContabilidad: 'SI' },
  { ruc: '1712345678001', razonSocial: 'PEREZ MORA JUAN CARLOS', nombreComercial: 'FERRETERIA EL VOLCAN', dirMatriz: 'Av. Maldonado S12-34, Quito', estab: '001', ptoEmi: '001', obligadoContabilidad: 'NO' },
  { ruc: '1891234560001', razonSocial: 'TRANSPORTES SIERRA NORTE S.A.', dirMatriz: 'Av. Cevallos 05-22, Ambato', estab: '003', ptoEmi: '002', obligadoContabilidad: 'SI' },
]);

/** One generated document, as the imitation lists it and as the authorisation service returns it. */
export interface SriGeneratedDocument {
  readonly claveAcceso: string;
  readonly tipo: SriTipo;
  readonly codDoc: string;
  readonly version: string;
  /** YYYY-MM-DD */
  readonly fechaEmision: string;
  /** ISO 8601, Ecuador's offset. */
  readonly fechaAutorizacion: string;
  readonly numeroAutorizacion: string;
  readonly emisor: { readonly ruc: string; readonly razonSocial: string };
  /** "001-001" */
  readonly serie: string;
  readonly secuencial: string;
  readonly importeTotal: string;
  /** The bare document, as the issuer signed it (without the signature: the imitation signs nothing). */
  readonly xml: string;
}

export interface SriDatasetOptions {
  /** @default SRI_DEFAULT_YEAR */
  readonly year?: number;
  /** @default SRI_BUSY_MONTH */
  readonly busyMonth?: number;
}


const cache = new Map<string, readonly SriGeneratedDocument[]>();

/**
 * Every document of the dataset for `seed`, sorted by date of issue then access key. Deterministic: the same seed
 * and options give the same list (cached, frozen).
 */
export function sriDataset(seed: number = SRI_DEFAULT_SEED, opts: SriDatasetOptions = {}): readonly SriGeneratedDocument[] {
  const year = opts.year ?? SRI_DEFAULT_YEAR;
  const busyMonth = opts.busyMonth ?? SRI_BUSY_MONTH;
  const id = `${seed}:${year}:${busyMonth}`;
  const hit = cache.get(id);
  if (hit) return hit;
  const rand = mulberry32(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const sequence = new Map<string, number>();
  const next = (issuer: SriIssuer, codDoc: string) => {
    const k = `${issuer.ruc}:${codDoc}`;
    const n = (sequence.get(k) ?? int(100, 900)) + 1;
    sequence.set(k, n);
    return String(n).padStart(9, '0');
  };
  // The mix of a typical month's received documents: mostly invoices, then withholdings and notes.
  const kinds: readonly Kind[] = [
    'factura-1.1.0', 'factura-1.1.0', 'factura-1.1.0', 'factura-1.0.0', 'factura-1.0.0', 'notaCredito-1.1.0',
    'notaDebito-1.0.0', 'retencion-2.0.0', 'retencion-1.0.0', 'liquidacionCompra-1.1.0',
  ];
  const docs: SriGeneratedDocument[] = [];
  for (let month = 1; month <= 12; month++) {
    const count = month === busyMonth ? SRI_BUSY_MONTH_DOCUMENTS : int(4, 12);
    const days = new Date(Date.UTC(year, month, 0)).getUTCDate();
    for (let i = 0; i < count; i++) {
      // The busy month: every kind once, then facturas; other months at random.
      const kind = month !== busyMonth ? pick(kinds) : i < kinds.length ? kinds[i]! : pick(['factura-1.0.0', 'factura-1.1.0'] as const);
      const issuer = pick(SRI_ISSUERS);
      const day = int(1, days);
      docs.push(makeDocument(kind, issuer, { year, month, day }, next, int, rand));
    }
  }
  docs.sort((a, b) => a.fechaEmision.localeCompare(b.fechaEmision) || a.claveAcceso.localeCompare(b.claveAcceso));
  const frozen = Object.freeze(docs.map((d) => Object.freeze(d)));
  cache.set(id, frozen);
  return frozen;
}

/** The documents of one period and type, as the portal's search filters them (day 0 or undefined: the whole month). */
export function sriDocumentsFor(
  all: readonly SriGeneratedDocument[], q: { year: number; month: number; day?: number; tipo?: SriTipo },
): SriGeneratedDocument[] {
  const prefix = `${q.year}-${String(q.month).padStart(2, '0')}${q.day ? `-${String(q.day).padStart(2, '0')}` : ''}`;
  return all.filter((d) => d.fechaEmision.startsWith(prefix) && (q.tipo === undefined || d.tipo === q.tipo));
}

/** The `<autorizacion>` the authorisation service and the portal's XML download give for a document. */
export function authorisationXml(d: SriGeneratedDocument): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<autorizacion>
  <estado>AUTORIZADO</estado>
  <numeroAutorizacion>${d.numeroAutorizacion}</numeroAutorizacion>
  <fechaAutorizacion>${d.fechaAutorizacion}</fechaAutorizacion>
  <ambiente>PRODUCCIÓN</ambiente>
  <comprobante><![CDATA[${d.xml}]]></comprobante>
  <mensajes/>
</autorizacion>
`;
}

// ── Building one document ──

type Kind = 'factura-1.0.0' | 'factura-1.1.0' | 'notaCredito-1.1.0' | 'notaDebito-1.0.0' | 'retencion-1.0.0' | 'retencion-2.0.0' | 'liquidacionCompra-1.1.0';

const PRODUCTS: readonly { codigo: string; descripcion: string; cents: number; iva: boolean }[] = [
  { codigo: 'PAP-001', descripcion: 'Resma de papel A4 75 g', cents: 485, iva: true },
  { codigo: 'TON-220', descripcion: 'Tóner láser negro 220', cents: 8990, iva: true },
  { codigo: 'SRV-MNT', descripcion: 'Mantenimiento preventivo de equipos', cents: 12000, iva: true },
  { codigo: 'TRN-UIO', descripcion: 'Transporte de carga Quito–Guayaquil', cents: 35000, iva: true },
  { codigo: 'ALM-ARR', descripcion: 'Arroz flor 25 kg', cents: 3150, iva: false },
  { codigo: 'LIC-SW1', descripcion: 'Licencia anual de software contable', cents: 54000, iva: true },
  { codigo: 'CAB-UTP', descripcion: 'Cable UTP cat. 6 (metro)', cents: 65, iva: true },
  { codigo: 'LEC-1LT', descripcion: 'Leche entera 1 litro', cents: 105, iva: false },
  { codigo: 'ASE-HRS', descripcion: 'Asesoría tributaria (hora)', cents: 4500, iva: true },
];

/** IVA as of 2024-04: 15 % (codigoPorcentaje 4) and 0 % (codigoPorcentaje 0). */
const IVA_15 = { codigoPorcentaje: '4', tarifa: '15' };
const IVA_0 = { codigoPorcentaje: '0', tarifa: '0' };

const esc = (s: string) => s.replace(/[&<>]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;'));
const money = (cents: number) => `${cents < 0 ? '-' : ''}${Math.floor(Math.abs(cents) / 100)}.${String(Math.abs(cents) % 100).padStart(2, '0')}`;
/** Rounds half up to whole cents (amounts here are never negative). */
const roundCents = (x: number) => Math.floor(x + 0.5 + 1e-9);
const pad2 = (n: number) => String(n).padStart(2, '0');

interface Day { year: number; month: number; day: number }
interface Line { codigo: string; descripcion: string; qtyMilli: number; priceCents: number; discountCents: number; totalCents: number; iva: boolean }

function makeLines(count: number, int: (lo: number, hi: number) => number, fractional: boolean): Line[] {
  const lines: Line[] = [];
  for (let i = 0; i < count; i++) {
    const p = PRODUCTS[int(0, PRODUCTS.length - 1)]!;
    // Version 1.1.0 allows fractional quantities (six decimals); 1.0.0 documents here use whole ones.
    const qtyMilli = fractional && int(0, 3) === 0 ? int(500, 9500) : int(1, 12) * 1000;
    const gross = roundCents((qtyMilli * p.cents) / 1000);
    const discountCents = int(0, 4) === 0 ? roundCents(gross * 0.05) : 0;
    lines.push({ codigo: p.codigo, descripcion: p.descripcion, qtyMilli, priceCents: p.cents, discountCents, totalCents: gross - discountCents, iva: p.iva });
  }
  return lines;
}

function qty(milli: number, decimals: number): string {
  return (milli / 1000).toFixed(decimals);
}

/** totalImpuesto per IVA rate: base = Σ lines of the rate, value = base × rate rounded to the cent. */
function taxGroups(lines: readonly Line[]): { codigoPorcentaje: string; tarifa: string; base: number; valor: number }[] {
  const out = [];
  for (const rate of [IVA_0, IVA_15]) {
    const base = lines.filter((l) => l.iva === (rate === IVA_15)).reduce((s, l) => s + l.totalCents, 0);
    if (base === 0) continue;
    out.push({ ...rate, base, valor: roundCents((base * Number(rate.tarifa)) / 100) });
  }
  return out;
}

function infoTributaria(issuer: SriIssuer, claveAcceso: string, codDoc: string, secuencial: string): string {
  return `<infoTributaria>
    <ambiente>2</ambiente>
    <tipoEmision>1</tipoEmision>
    <razonSocial>${esc(issuer.razonSocial)}</razonSocial>${issuer.nombreComercial ? `
    <nombreComercial>${esc(issuer.nombreComercial)}</nombreComercial>` : ''}
    <ruc>${issuer.ruc}</ruc>
    <claveAcceso>${claveAcceso}</claveAcceso>
    <codDoc>${codDoc}</codDoc>
    <estab>${issuer.estab}</estab>
    <ptoEmi>${issuer.ptoEmi}</ptoEmi>
    <secuencial>${secuencial}</secuencial>
    <dirMatriz>${esc(issuer.dirMatriz)}</dirMatriz>
  </infoTributaria>`;
}

function detallesXml(lines: readonly Line[], decimals: number, codeTag: string): string {
  return `<detalles>${lines.map((l) => `
    <detalle>
      <${codeTag}>${l.codigo}</${codeTag}>
      <descripcion>${esc(l.descripcion)}</descripcion>
      <cantidad>${qty(l.qtyMilli, decimals)}</cantidad>
      <precioUnitario>${(l.priceCents / 100).toFixed(decimals)}</precioUnitario>
      <descuento>${money(l.discountCents)}</descuento>
      <precioTotalSinImpuesto>${money(l.totalCents)}</precioTotalSinImpuesto>
      <impuestos>
        <impuesto>
          <codigo>2</codigo>
          <codigoPorcentaje>${l.iva ? IVA_15.codigoPorcentaje : IVA_0.codigoPorcentaje}</codigoPorcentaje>
          <tarifa>${l.iva ? IVA_15.tarifa : IVA_0.tarifa}</tarifa>
          <baseImponible>${money(l.totalCents)}</baseImponible>
          <valor>${money(l.iva ? roundCents(l.totalCents * 0.15) : 0)}</valor>
        </impuesto>
      </impuestos>
    </detalle>`).join('')}
  </detalles>`;
}

function totalConImpuestos(groups: ReturnType<typeof taxGroups>, withTarifa: boolean): string {
  return `<totalConImpuestos>${groups.map((g) => `
      <totalImpuesto>
        <codigo>2</codigo>
        <codigoPorcentaje>${g.codigoPorcentaje}</codigoPorcentaje>
        <baseImponible>${money(g.base)}</baseImponible>${withTarifa ? `
        <tarifa>${g.tarifa}</tarifa>` : ''}
        <valor>${money(g.valor)}</valor>
      </totalImpuesto>`).join('')}
    </totalConImpuestos>`;
}

const infoAdicional = (issuer: SriIssuer) => `<infoAdicional>
    <campoAdicional nombre="Dirección">${esc(issuer.dirMatriz)}</campoAdicional>
    <campoAdicional nombre="Email">facturacion@${issuer.ruc}.example.ec</campoAdicional>
  </infoAdicional>`;

function makeDocument(
  kind: Kind, issuer: SriIssuer, day: Day,
  next: (issuer: SriIssuer, codDoc: string) => string, int: (lo: number, hi: number) => number, rand: () => number,
): SriGeneratedDocument {
  const [tipoName, version] = kind.split('-') as [SriTipo, string];
  const codDoc = COD_DOC_OF[tipoName];
  const secuencial = next(issuer, codDoc);
  const fecha = `${pad2(day.day)}${pad2(day.month)}${day.year}`;
  const fechaSlash = `${pad2(day.day)}/${pad2(day.month)}/${day.year}`;
  const codigoNumerico = String(Math.floor(rand() * 1e8)).padStart(8, '0');
  const claveAcceso = buildAccessKey({ fecha, codDoc, ruc: issuer.ruc, ambiente: '2', serie: `${issuer.estab}${issuer.ptoEmi}`, secuencial, codigoNumerico, tipoEmision: '1' });
  const head = infoTributaria(issuer, claveAcceso, codDoc, secuencial);
  const R = SRI_DEMO_RECEPTOR;
  const establishment = `<dirEstablecimiento>${esc(issuer.dirMatriz)}</dirEstablecimiento>`;
  const contabilidad = `<obligadoContabilidad>${issuer.obligadoContabilidad}</obligadoContabilidad>`;
  let body: string;
  let total: number;
  const sustentoNum = `${pad2(int(1, 3)).padStart(3, '0')}${pad2(int(1, 9)).padStart(3, '0')}${String(int(1000, 99999)).padStart(9, '0')}`;
  const sustentoDay = `${pad2(Math.max(1, day.day - int(0, 5)))}/${pad2(day.month)}/${day.year}`;
  // The buyer (this organisation) as a factura, nota de crédito or nota de débito names it, and the factura a note
  // modifies (a new number drawn each time it is written).
  const comprador = `<tipoIdentificacionComprador>${R.tipoIdentificacion}</tipoIdentificacionComprador>
    <razonSocialComprador>${esc(R.razonSocial)}</razonSocialComprador>
    <identificacionComprador>${R.ruc}</identificacionComprador>`;
  const docModificado = () => `<codDocModificado>01</codDocModificado>
    <numDocModificado>${issuer.estab}-${issuer.ptoEmi}-${String(int(1, 99999)).padStart(9, '0')}</numDocModificado>
    <fechaEmisionDocSustento>${sustentoDay}</fechaEmisionDocSustento>`;

  switch (kind) {
    case 'factura-1.0.0':
    case 'factura-1.1.0':
    case 'liquidacionCompra-1.1.0': {
      const v11 = version === '1.1.0';
      const lines = makeLines(int(1, 5), int, v11);
      const sub = lines.reduce((s, l) => s + l.totalCents, 0);
      const disc = lines.reduce((s, l) => s + l.discountCents, 0);
      const groups = taxGroups(lines);
      total = sub + groups.reduce((s, g) => s + g.valor, 0);
      const pagos = `<pagos>
      <pago>
        <formaPago>${total > 100000 ? '20' : '01'}</formaPago>
        <total>${money(total)}</total>${total > 100000 ? `
        <plazo>30</plazo>
        <unidadTiempo>dias</unidadTiempo>` : ''}
      </pago>
    </pagos>`;
      if (kind === 'liquidacionCompra-1.1.0') {
        body = `<infoLiquidacionCompra>
    <fechaEmision>${fechaSlash}</fechaEmision>
    ${establishment}
    ${contabilidad}
    <tipoIdentificacionProveedor>${R.tipoIdentificacion}</tipoIdentificacionProveedor>
    <razonSocialProveedor>${esc(R.razonSocial)}</razonSocialProveedor>
    <identificacionProveedor>${R.ruc}</identificacionProveedor>
    <totalSinImpuestos>${money(sub)}</totalSinImpuestos>
    <totalDescuento>${money(disc)}</totalDescuento>
    ${totalConImpuestos(groups, true)}
    <importeTotal>${money(total)}</importeTotal>
    <moneda>DOLAR</moneda>
    ${pagos}
  </infoLiquidacionCompra>
  ${detallesXml(lines, 6, 'codigoPrincipal')}`;
      } else {
        body = `<infoFactura>
    <fechaEmision>${fechaSlash}</fechaEmision>
    ${establishment}
    ${contabilidad}
    ${comprador}
    <totalSinImpuestos>${money(sub)}</totalSinImpuestos>
    <totalDescuento>${money(disc)}</totalDescuento>
    ${totalConImpuestos(groups, false)}
    <propina>0.00</propina>
    <importeTotal>${money(total)}</importeTotal>
    <moneda>DOLAR</moneda>${v11 ? `
    ${pagos}` : ''}
  </infoFactura>
  ${detallesXml(lines, v11 ? 6 : 2, 'codigoPrincipal')}`;
      }
      break;
    }
    case 'notaCredito-1.1.0': {
      const lines = makeLines(int(1, 2), int, true);
      const sub = lines.reduce((s, l) => s + l.totalCents, 0);
      const groups = taxGroups(lines);
      total = sub + groups.reduce((s, g) => s + g.valor, 0);
      body = `<infoNotaCredito>
    <fechaEmision>${fechaSlash}</fechaEmision>
    ${establishment}
    ${comprador}
    ${contabilidad}
    ${docModificado()}
    <totalSinImpuestos>${money(sub)}</totalSinImpuestos>
    <valorModificacion>${money(total)}</valorModificacion>
    <moneda>DOLAR</moneda>
    ${totalConImpuestos(groups, false)}
    <motivo>Devolución de mercadería</motivo>
  </infoNotaCredito>
  ${detallesXml(lines, 6, 'codigoInterno')}`;
      break;
    }
    case 'notaDebito-1.0.0': {
      const motivos = [{ razon: 'Intereses por mora', cents: int(500, 9000) }];
      if (int(0, 1) === 1) motivos.push({ razon: 'Gastos de cobranza', cents: int(300, 2500) });
      const sub = motivos.reduce((s, m) => s + m.cents, 0);
      const iva = roundCents(sub * 0.15);
      total = sub + iva;
      body = `<infoNotaDebito>
    <fechaEmision>${fechaSlash}</fechaEmision>
    ${establishment}
    ${comprador}
    ${contabilidad}
    ${docModificado()}
    <totalSinImpuestos>${money(sub)}</totalSinImpuestos>
    <impuestos>
      <impuesto>
        <codigo>2</codigo>
        <codigoPorcentaje>4</codigoPorcentaje>
        <tarifa>15</tarifa>
        <baseImponible>${money(sub)}</baseImponible>
        <valor>${money(iva)}</valor>
      </impuesto>
    </impuestos>
    <valorTotal>${money(total)}</valorTotal>
  </infoNotaDebito>
  <motivos>${motivos.map((m) => `
    <motivo>
      <razon>${m.razon}</razon>
      <valor>${money(m.cents)}</valor>
    </motivo>`).join('')}
  </motivos>`;
      break;
    }
    case 'retencion-1.0.0':
    case 'retencion-2.0.0': {
      // What the issuer withheld from an invoice the organisation sent it: income tax on the subtotal, VAT on the VAT.
      const base = int(5000, 250000);
      const ivaValue = roundCents(base * 0.15);
      const renta = pick2(int, [{ code: '312', pct: '1.75' }, { code: '303', pct: '10' }, { code: '3440', pct: '2.75' }]);
      const ivaRet = pick2(int, [{ code: '9', pct: '10' }, { code: '10', pct: '20' }, { code: '1', pct: '30' }]);
      const rentaVal = roundCents((base * Number(renta.pct)) / 100);
      const ivaVal = roundCents((ivaValue * Number(ivaRet.pct)) / 100);
      total = rentaVal + ivaVal;
      const info = `<infoCompRetencion>
    <fechaEmision>${fechaSlash}</fechaEmision>
    ${establishment}
    ${contabilidad}
    <tipoIdentificacionSujetoRetenido>${R.tipoIdentificacion}</tipoIdentificacionSujetoRetenido>${version === '2.0.0' ? `
    <parteRel>NO</parteRel>` : ''}
    <razonSocialSujetoRetenido>${esc(R.razonSocial)}</razonSocialSujetoRetenido>
    <identificacionSujetoRetenido>${R.ruc}</identificacionSujetoRetenido>
    <periodoFiscal>${pad2(day.month)}/${day.year}</periodoFiscal>
  </infoCompRetencion>`;
      const ret = (codigo: string, r: { code: string; pct: string }, b: number, v: number, extra = '') => `
      <${version === '2.0.0' ? 'retencion' : 'impuesto'}>
        <codigo>${codigo}</codigo>
        <codigoRetencion>${r.code}</codigoRetencion>
        <baseImponible>${money(b)}</baseImponible>
        <porcentajeRetener>${r.pct}</porcentajeRetener>
        <valorRetenido>${money(v)}</valorRetenido>${extra}
      </${version === '2.0.0' ? 'retencion' : 'impuesto'}>`;
      if (version === '1.0.0') {
        const sustento = `
        <codDocSustento>01</codDocSustento>
        <numDocSustento>${sustentoNum}</numDocSustento>
        <fechaEmisionDocSustento>${sustentoDay}</fechaEmisionDocSustento>`;
        body = `${info}
  <impuestos>${ret('1', renta, base, rentaVal, sustento)}${ret('2', ivaRet, ivaValue, ivaVal, sustento)}
  </impuestos>`;
      } else {
        body = `${info}
  <docsSustento>
    <docSustento>
      <codSustento>01</codSustento>
      <codDocSustento>01</codDocSustento>
      <numDocSustento>${sustentoNum}</numDocSustento>
      <fechaEmisionDocSustento>${sustentoDay}</fechaEmisionDocSustento>
      <pagoLocExt>01</pagoLocExt>
      <totalSinImpuestos>${money(base)}</totalSinImpuestos>
      <importeTotal>${money(base + ivaValue)}</importeTotal>
      <impuestosDocSustento>
        <impuestoDocSustento>
          <codImpuestoDocSustento>2</codImpuestoDocSustento>
          <codigoPorcentaje>4</codigoPorcentaje>
          <baseImponible>${money(base)}</baseImponible>
          <tarifa>15</tarifa>
          <valorImpuesto>${money(ivaValue)}</valorImpuesto>
        </impuestoDocSustento>
      </impuestosDocSustento>
      <retenciones>${ret('1', renta, base, rentaVal)}${ret('2', ivaRet, ivaValue, ivaVal)}
      </retenciones>
      <pagos>
        <pago>
          <formaPago>20</formaPago>
          <total>${money(base + ivaValue)}</total>
        </pago>
      </pagos>
    </docSustento>
  </docsSustento>`;
      }
      break;
    }
  }
  const root = tipoName === 'retencion' ? 'comprobanteRetencion' : tipoName;
  const xml = `<?xml version="1.0" encoding="UTF-8"?>
<${root} id="comprobante" version="${version}">
  ${head}
  ${body}
  ${infoAdicional(issuer)}
</${root}>
`;
  // Authorised within a few hours of issue, in Ecuador's time (UTC−5, no daylight saving).
  const minutes = int(5, 600);
  const at = new Date(Date.UTC(day.year, day.month - 1, day.day, 8, 0, 0) + minutes * 60_000);
  const fechaAutorizacion = `${at.toISOString().slice(0, 19)}-05:00`;
  return {
    claveAcceso, tipo: tipoName, codDoc, version,
    fechaEmision: `${day.year}-${pad2(day.month)}-${pad2(day.day)}`, fechaAutorizacion, numeroAutorizacion: claveAcceso,
    emisor: { ruc: issuer.ruc, razonSocial: issuer.razonSocial },
    serie: `${issuer.estab}-${issuer.ptoEmi}`, secuencial, importeTotal: money(total), xml,
  };
}

function pick2<T>(int: (lo: number, hi: number) => number, xs: readonly T[]): T {
  return xs[int(0, xs.length - 1)]!;
}

/**
 * From the SRI's XML to checked data (issue 16, "Parsers"; docs/sri.md "Parser output").
 *
 * One entry point, parseSriDocument, reads any of the SRI's electronic documents — factura, nota de crédito, nota de
 * débito, comprobante de retención, liquidación de compra, guía de remisión — bare, inside an `<autorizacion>`
 * wrapper (the authorisation service's answer or the XML the portal downloads), or as the whole SOAP response.
 *
 * - XML through fast-xml-parser, with entity expansion off: a DOCTYPE's entities are never expanded (no "billion
 *   laughs"); the five predefined entities and character references are decoded here, leaf by leaf.
 * - Amounts stay the strings the XML holds; checks do exact decimal arithmetic (decimal.ts).
 * - A check that fails is a `problemas` entry, never an exception. Only XML that is not well formed, or that is no
 *   SRI document at all, throws: an SriError SRI_XML_INVALID whose message starts with the file's name.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { SriError } from '../shared/errors.ts';
import { accessKeyFields, accessKeyValid, COD_DOC, COD_DOC_OF, type SriTipo } from './access-key.ts';
import { abs, CENT, formatScaled, mulScaled, toScaled } from './decimal.ts';
import type {
  SriDetalle, SriDocSustento, SriDocument, SriImpuesto, SriProblema, SriProblemaCodigo, SriRetencion,
} from './types.ts';

export type { SriDetalle, SriDocSustento, SriDocument, SriImpuesto, SriProblema, SriProblemaCodigo, SriRetencion, SriTipo };

/** The versions each type's XSD exists in; any other is parsed as the nearest and reported (VERSION_DESCONOCIDA). */
export const KNOWN_VERSIONS: Readonly<Record<SriTipo, readonly string[]>> = Object.freeze({
  factura: ['1.0.0', '1.1.0', '2.0.0', '2.1.0'],
  notaCredito: ['1.0.0', '1.1.0'],
  notaDebito: ['1.0.0'],
  retencion: ['1.0.0', '2.0.0'],
  liquidacionCompra: ['1.0.0', '1.1.0'],
  guiaRemision: ['1.0.0', '1.1.0'],
});

/** Root element → type. */
const ROOTS: Readonly<Record<string, SriTipo>> = {
  factura: 'factura', notaCredito: 'notaCredito', notaDebito: 'notaDebito', comprobanteRetencion: 'retencion',
  liquidacionCompra: 'liquidacionCompra', guiaRemision: 'guiaRemision',
};

/** Elements that repeat in some document, always read as arrays so one and many look alike. */
const REPEATED = new Set([
  'detalle', 'totalImpuesto', 'impuesto', 'campoAdicional', 'pago', 'retencion', 'docSustento', 'impuestoDocSustento',
  'motivo', 'detAdicional', 'autorizacion', 'mensaje', 'destinatario', 'reembolsoDetalle', 'compensacion', 'rubro',
]);

const CDATA = '__cdata';

const xml = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  // Values stay strings as written: "1.10" must not become 1.1, nor "0001" 1.
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  removeNSPrefix: true,
  // Entity expansion off: DOCTYPE entities are never expanded; predefined entities are decoded by decodeXml.
  processEntities: false,
  htmlEntities: false,
  // CDATA apart from text, so that the wrapped document's own escapes are not decoded twice.
  cdataPropName: CDATA,
  ignoreDeclaration: true,
  ignorePiTags: true,
  isArray: (name, _path, _leaf, isAttribute) => !isAttribute && REPEATED.has(name),
});

type Node = Record<string, unknown>;

const PREDEFINED: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** The five predefined entities and character references; any other entity reference is left as written. */
function decodeXml(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(/&(lt|gt|amp|quot|apos|#\d{1,7}|#x[0-9a-fA-F]{1,6});/g, (whole, e: string) => {
    if (e[0] !== '#') return PREDEFINED[e] ?? whole;
    const cp = e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : whole;
  });
}

/** The text of an element (decoded text plus raw CDATA), or undefined when absent. */
function textOf(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return decodeXml(v);
  if (Array.isArray(v)) return textOf(v[0]);
  if (typeof v === 'object') {
    const n = v as Node;
    const t = n['#text'];
    const c = n[CDATA];
    const cdata = c === undefined ? '' : Array.isArray(c) ? c.join('') : String(c);
    if (t === undefined && c === undefined) return '';
    return (typeof t === 'string' ? decodeXml(t) : '') + cdata;
  }
  return String(v);
}

function child(n: Node | undefined, name: string): Node | undefined {
  const v = n?.[name];
  if (Array.isArray(v)) return (v[0] ?? undefined) as Node | undefined;
  return v !== null && typeof v === 'object' ? (v as Node) : undefined;
}

function children(n: Node | undefined, name: string): Node[] {
  const v = n?.[name];
  if (v === undefined) return [];
  // An empty element (<detalle/>) comes back as '': an element with no children.
  return (Array.isArray(v) ? v : [v]).map((x) => (x !== null && typeof x === 'object' ? (x as Node) : {}));
}

/** Depth-first search for the first element named `name` (the SOAP envelope puts `<autorizacion>` a few levels down). */
function find(n: unknown, name: string, depth = 8): Node | undefined {
  if (depth < 0 || n === null || typeof n !== 'object') return undefined;
  if (Array.isArray(n)) {
    for (const x of n) {
      const f = find(x, name, depth);
      if (f) return f;
    }
    return undefined;
  }
  const o = n as Node;
  if (name in o) return child(o, name) ?? {};
  for (const [k, v] of Object.entries(o)) {
    if (k.startsWith('@_') || k === '#text' || k === CDATA) continue;
    const f = find(v, name, depth - 1);
    if (f) return f;
  }
  return undefined;
}

/** Collects problems and reads fields, noting the required ones that are missing. */
class Reader {
  readonly problemas: SriProblema[] = [];
  problem(codigo: SriProblemaCodigo, mensaje: string): void {
    this.problemas.push({ codigo, mensaje });
  }
  /** A required field: '' and a CAMPO_FALTANTE when absent. */
  req(n: Node | undefined, name: string, where: string): string {
    const v = textOf(n?.[name]);
    if (v === undefined || v === '') {
      this.problem('CAMPO_FALTANTE', `Falta ${where}/${name}.`);
      return '';
    }
    return v;
  }
  /** A required amount: must also be a decimal number. */
  amount(n: Node | undefined, name: string, where: string): string {
    const v = this.req(n, name, where);
    if (v !== '' && toScaled(v) === null) this.problem('IMPORTE_INVALIDO', `${where}/${name} no es un importe: "${v}".`);
    return v;
  }
  opt(n: Node | undefined, name: string): string | undefined {
    const v = textOf(n?.[name]);
    return v === undefined || v === '' ? undefined : v;
  }
  /** dd/mm/yyyy → YYYY-MM-DD; as written with a FECHA_INVALIDA when it is not such a date. */
  date(raw: string, where: string): string {
    const m = /^(\d{2})\/(\d{2})\/(\d{4})$/.exec(raw);
    if (!m) {
      if (raw !== '') this.problem('FECHA_INVALIDA', `${where} no es una fecha dd/mm/aaaa: "${raw}".`);
      return raw;
    }
    const iso = `${m[3]}-${m[2]}-${m[1]}`;
    const d = new Date(`${iso}T00:00:00Z`);
    if (Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== iso) {
      this.problem('FECHA_INVALIDA', `${where} no es una fecha válida: "${raw}".`);
      return raw;
    }
    return iso;
  }
}

/** The authorisation wrapper's fields. */
interface Wrapper { estado?: string; numeroAutorizacion?: string; fechaAutorizacion?: string }

/**
 * Parses one SRI document (bare, in an `<autorizacion>` wrapper, or in the authorisation service's SOAP answer).
 *
 * @param fileName named in the error when the XML is not well formed or no SRI document; @default '(XML)'
 * @throws SriError SRI_XML_INVALID for malformed XML or XML that holds no SRI document — never for a failed check.
 */
export function parseSriDocument(xmlText: string, fileName = '(XML)'): SriDocument {
  const root = parseXml(xmlText, fileName);
  const autorizacion = root['autorizacion'] !== undefined ? child(root, 'autorizacion') ?? {} : chooseAutorizacion(root);
  if (autorizacion !== undefined) return parseWrapped(autorizacion, fileName);
  for (const [name, tipo] of Object.entries(ROOTS)) {
    const doc = child(root, name);
    if (doc) return parseBody(doc, tipo, {}, new Reader());
  }
  // The service's answer for a key it does not know: a SOAP response with no autorizacion at all.
  if (find(root, 'RespuestaAutorizacionComprobante') !== undefined) {
    throw invalid(fileName, 'the authorisation service\'s answer holds no <autorizacion> (numeroComprobantes 0: the SRI does not know this access key)');
  }
  const names = Object.keys(root).filter((k) => !k.startsWith('@_') && k !== '#text');
  throw invalid(fileName, `not an SRI document: root element <${names[0] ?? '?'}>, expected one of ${Object.keys(ROOTS).join(', ')} or autorizacion`);
}

/**
 * The `<autorizacion>` of a SOAP answer. The service lists one per time the document was sent (a rejected attempt, then
 * the authorised one): the first AUTORIZADO, else the first.
 */
function chooseAutorizacion(root: Node): Node | undefined {
  const list = children(find(root, 'autorizaciones'), 'autorizacion');
  if (list.length > 0) return list.find((a) => textOf(a['estado']) === 'AUTORIZADO') ?? list[0];
  return find(root, 'autorizacion');
}

function invalid(fileName: string, why: string): SriError {
  return new SriError('SRI_XML_INVALID', `${fileName}: ${why}`, { details: { file: fileName } });
}

function parseXml(text: string, fileName: string): Node {
  const checked = XMLValidator.validate(text, { allowBooleanAttributes: false });
  if (checked !== true) {
    const { msg, line, col } = checked.err;
    throw invalid(fileName, `not well-formed XML at line ${line}, column ${col}: ${msg}`);
  }
  try {
    return xml.parse(text) as Node;
  } catch (e) {
    throw invalid(fileName, `not well-formed XML: ${(e as Error).message}`);
  }
}

function parseWrapped(a: Node, fileName: string): SriDocument {
  const r = new Reader();
  const estado = r.opt(a, 'estado');
  const numeroAutorizacion = r.opt(a, 'numeroAutorizacion');
  const fechaRaw = r.opt(a, 'fechaAutorizacion');
  const wrapper: Wrapper = {
    ...(estado !== undefined ? { estado } : {}),
    ...(numeroAutorizacion !== undefined ? { numeroAutorizacion } : {}),
    ...(fechaRaw !== undefined ? { fechaAutorizacion: isoAuthorisationDate(fechaRaw, r) } : {}),
  };
  if (estado !== undefined && estado !== 'AUTORIZADO') r.problem('NO_AUTORIZADO', `El estado del comprobante es ${estado}.`);
  // The document inside: CDATA as the SRI sends it, or escaped text (some tools re-serialise it so), or even inline.
  const comprobante = a['comprobante'];
  let inner: Node;
  if (comprobante !== null && typeof comprobante === 'object' && Object.keys(ROOTS).some((k) => k in (comprobante as Node))) {
    inner = comprobante as Node;
  } else {
    const text = textOf(comprobante)?.trim();
    if (!text) throw invalid(fileName, '<autorizacion> holds no <comprobante> (a document the SRI did not authorise carries none)');
    inner = parseXml(text, `${fileName} <comprobante>`);
  }
  for (const [name, tipo] of Object.entries(ROOTS)) {
    const doc = child(inner, name);
    if (doc) return parseBody(doc, tipo, wrapper, r);
  }
  const names = Object.keys(inner).filter((k) => !k.startsWith('@_'));
  throw invalid(fileName, `<comprobante> holds no SRI document: root element <${names[0] ?? '?'}>`);
}

/**
 * fechaAutorizacion → ISO 8601. The service writes it as xs:dateTime (2024-03-05T10:15:30-05:00, sometimes with
 * milliseconds); older answers and the offline scheme's downloads as dd/mm/yyyy hh:mm:ss in Ecuador's time (UTC−5,
 * no daylight saving).
 */
function isoAuthorisationDate(raw: string, r: Reader): string {
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(raw)) return raw;
  const m = /^(\d{2})\/(\d{2})\/(\d{4})\s+(\d{2}):(\d{2}):(\d{2})$/.exec(raw);
  if (m) return `${m[3]}-${m[2]}-${m[1]}T${m[4]}:${m[5]}:${m[6]}-05:00`;
  const m2 = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?$/.exec(raw);
  if (m2) return `${m2[1]}T${m2[2]}${m2[3] ?? ''}-05:00`;
  r.problem('FECHA_INVALIDA', `fechaAutorizacion no es una fecha reconocida: "${raw}".`);
  return raw;
}

function impuestosOf(list: Node[], r: Reader, where: string): SriImpuesto[] {
  return list.map((t) => {
    const tarifa = r.opt(t, 'tarifa');
    return {
      codigo: r.req(t, 'codigo', where),
      codigoPorcentaje: r.req(t, 'codigoPorcentaje', where),
      ...(tarifa !== undefined ? { tarifa } : {}),
      baseImponible: r.amount(t, 'baseImponible', where),
      valor: r.amount(t, 'valor', where),
    };
  });
}

function detallesOf(list: Node[], r: Reader, codeTag: 'codigoPrincipal' | 'codigoInterno'): SriDetalle[] {
  return list.map((d, i) => {
    const where = `detalles/detalle[${i + 1}]`;
    const codigo = r.opt(d, codeTag);
    return {
      ...(codigo !== undefined ? { codigoPrincipal: codigo } : {}),
      descripcion: r.req(d, 'descripcion', where),
      cantidad: r.amount(d, 'cantidad', where),
      precioUnitario: r.amount(d, 'precioUnitario', where),
      descuento: textOf(d['descuento']) || '0.00',
      precioTotalSinImpuesto: r.amount(d, 'precioTotalSinImpuesto', where),
    };
  });
}

function infoAdicionalOf(doc: Node): Record<string, string> | undefined {
  const campos = children(child(doc, 'infoAdicional'), 'campoAdicional');
  if (campos.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const c of campos) {
    const nombre = textOf(c['@_nombre']) ?? '';
    out[nombre] = textOf(c) ?? '';
  }
  return out;
}

function sum(values: readonly string[]): bigint {
  let s = 0n;
  for (const v of values) s += toScaled(v) ?? 0n;
  return s;
}

function parseBody(doc: Node, tipo: SriTipo, wrapper: Wrapper, r: Reader): SriDocument {
  const version = textOf(doc['@_version']) ?? '';
  if (!KNOWN_VERSIONS[tipo].includes(version)) {
    r.problem('VERSION_DESCONOCIDA', `La versión "${version}" de ${tipo} no es una de ${KNOWN_VERSIONS[tipo].join(', ')}; se leyó como la más cercana.`);
  }
  const it = child(doc, 'infoTributaria');
  const W = 'infoTributaria';
  const claveAcceso = r.req(it, 'claveAcceso', W);
  const ambiente = r.req(it, 'ambiente', W);
  const ruc = r.req(it, 'ruc', W);
  const razonSocial = r.req(it, 'razonSocial', W);
  const nombreComercial = r.opt(it, 'nombreComercial');
  const codDoc = r.req(it, 'codDoc', W);
  const estab = r.req(it, 'estab', W);
  const ptoEmi = r.req(it, 'ptoEmi', W);
  const secuencial = r.req(it, 'secuencial', W);
  if (codDoc !== '' && COD_DOC[codDoc as keyof typeof COD_DOC] !== tipo) {
    r.problem('TIPO_INCONSISTENTE', `codDoc ${codDoc} no corresponde a un documento ${tipo} (${COD_DOC_OF[tipo]}).`);
  }

  const body = BODIES[tipo](doc, r, version);
  const fechaEmision = r.date(body.fechaRaw, body.fechaWhere);

  const claveAccesoValida = accessKeyValid(claveAcceso);
  checkAccessKey(claveAcceso, claveAccesoValida, {
    fechaRaw: body.fechaRaw, codDoc: COD_DOC_OF[tipo], ruc, ambiente, serie: `${estab}${ptoEmi}`, secuencial,
  }, r);
  if (wrapper.numeroAutorizacion !== undefined && /^\d{49}$/.test(wrapper.numeroAutorizacion) && wrapper.numeroAutorizacion !== claveAcceso) {
    r.problem('AUTORIZACION_CLAVE', 'El número de autorización (49 dígitos) no es la clave de acceso del comprobante.');
  }
  const infoAdicional = infoAdicionalOf(doc);
  return {
    claveAcceso,
    claveAccesoValida,
    tipo,
    version,
    ambiente,
    ...wrapper,
    emisor: { ruc, razonSocial, ...(nombreComercial !== undefined ? { nombreComercial } : {}) },
    receptor: body.receptor,
    serie: `${estab}-${ptoEmi}`,
    secuencial,
    fechaEmision,
    moneda: body.moneda ?? 'DOLAR',
    totales: body.totales,
    detalles: body.detalles,
    ...(body.retenciones !== undefined ? { retenciones: body.retenciones } : {}),
    ...(body.docModificado !== undefined ? { docModificado: body.docModificado } : {}),
    ...(infoAdicional !== undefined ? { infoAdicional } : {}),
    problemas: r.problemas,
  };
}

function checkAccessKey(
  key: string, valid: boolean,
  doc: { fechaRaw: string; codDoc: string; ruc: string; ambiente: string; serie: string; secuencial: string },
  r: Reader,
): void {
  const f = accessKeyFields(key);
  if (!f) {
    if (key !== '') r.problem('CLAVE_ACCESO_FORMATO', `La clave de acceso no tiene 49 dígitos: "${key}".`);
    return;
  }
  if (!valid) r.problem('CLAVE_ACCESO_DIGITO', `El dígito verificador (módulo 11) de la clave de acceso no es ${f.digitoVerificador}.`);
  const fecha = doc.fechaRaw.replaceAll('/', '');
  const mismatch = (codigo: SriProblemaCodigo, campo: string, enClave: string, enDoc: string) => {
    if (enDoc !== '' && enClave !== enDoc) r.problem(codigo, `La clave de acceso dice ${campo} ${enClave}, el comprobante ${enDoc}.`);
  };
  mismatch('CLAVE_ACCESO_FECHA', 'fecha', f.fecha, fecha);
  mismatch('CLAVE_ACCESO_TIPO', 'tipo', f.codDoc, doc.codDoc);
  mismatch('CLAVE_ACCESO_RUC', 'RUC', f.ruc, doc.ruc);
  mismatch('CLAVE_ACCESO_AMBIENTE', 'ambiente', f.ambiente, doc.ambiente);
  mismatch('CLAVE_ACCESO_SERIE', 'serie', f.serie, doc.serie);
  mismatch('CLAVE_ACCESO_SECUENCIAL', 'secuencial', f.secuencial, doc.secuencial);
}

interface Body {
  fechaRaw: string;
  fechaWhere: string;
  receptor: SriDocument['receptor'];
  moneda?: string;
  totales: SriDocument['totales'];
  detalles: SriDetalle[];
  retenciones?: SriRetencion[];
  docModificado?: SriDocument['docModificado'];
}

const over = (a: bigint, b: bigint) => abs(a - b) > CENT;

/** Each line: cantidad × precioUnitario − descuento = precioTotalSinImpuesto (within a cent). */
function checkLines(detalles: readonly SriDetalle[], r: Reader): void {
  detalles.forEach((d, i) => {
    const q = toScaled(d.cantidad);
    const p = toScaled(d.precioUnitario);
    const disc = toScaled(d.descuento) ?? 0n;
    const total = toScaled(d.precioTotalSinImpuesto);
    if (q === null || p === null || total === null) return;
    const expected = mulScaled(q, p) - disc;
    if (over(expected, total)) {
      r.problem('LINEA_IMPORTE', `Detalle ${i + 1}: ${d.cantidad} × ${d.precioUnitario} − ${d.descuento} = ${formatScaled(expected)}, no ${d.precioTotalSinImpuesto}.`);
    }
  });
}

/** Σ lines = subtotal, and subtotal + taxes (+ tip) = total, each within a cent. */
function checkTotals(lineTotals: readonly string[], totales: SriDocument['totales'], r: Reader, lineWord = 'los detalles'): void {
  const sub = toScaled(totales.sinImpuestos);
  const lines = sum(lineTotals);
  if (sub !== null && lineTotals.length > 0 && over(lines, sub)) {
    r.problem('TOTALES_LINEAS', `La suma de ${lineWord} es ${formatScaled(lines)}, el subtotal sin impuestos ${totales.sinImpuestos}.`);
  }
  const total = toScaled(totales.importeTotal);
  if (sub === null || total === null) return;
  const expected = sub + sum(totales.impuestos.map((t) => t.valor)) + (toScaled(totales.propina) ?? 0n);
  if (over(expected, total)) {
    r.problem('TOTALES_IMPUESTOS', `Subtotal más impuestos${totales.propina ? ' y propina' : ''} es ${formatScaled(expected)}, el total ${totales.importeTotal}.`);
  }
}

/**
 * A factura and a liquidación de compra have the same body: lines, totals (a factura may add a tip), and the other
 * party — the buyer of a factura, the supplier of a liquidación.
 */
function salesDocument(doc: Node, r: Reader, W: 'infoFactura' | 'infoLiquidacionCompra', role: 'Comprador' | 'Proveedor'): Body {
  const info = child(doc, W);
  const detalles = detallesOf(children(child(doc, 'detalles'), 'detalle'), r, 'codigoPrincipal');
  const propina = W === 'infoFactura' ? r.opt(info, 'propina') : undefined;
  const totales = {
    sinImpuestos: r.amount(info, 'totalSinImpuestos', W),
    descuento: r.amount(info, 'totalDescuento', W),
    impuestos: impuestosOf(children(child(info, 'totalConImpuestos'), 'totalImpuesto'), r, `${W}/totalConImpuestos`),
    ...(propina !== undefined ? { propina } : {}),
    importeTotal: r.amount(info, 'importeTotal', W),
  };
  checkLines(detalles, r);
  checkTotals(detalles.map((d) => d.precioTotalSinImpuesto), totales, r);
  const moneda = r.opt(info, 'moneda');
  return {
    fechaRaw: r.req(info, 'fechaEmision', W), fechaWhere: `${W}/fechaEmision`,
    receptor: receptorOf(info, r, W, role),
    ...(moneda !== undefined ? { moneda } : {}),
    totales, detalles,
  };
}

const factura = (doc: Node, r: Reader): Body => salesDocument(doc, r, 'infoFactura', 'Comprador');
const liquidacionCompra = (doc: Node, r: Reader): Body => salesDocument(doc, r, 'infoLiquidacionCompra', 'Proveedor');

/** The receiving party of a document: its fields are named after the role (Comprador, Proveedor, SujetoRetenido). */
function receptorOf(info: Node | undefined, r: Reader, W: string, role: 'Comprador' | 'Proveedor' | 'SujetoRetenido'): Body['receptor'] {
  return {
    tipoIdentificacion: r.req(info, `tipoIdentificacion${role}`, W),
    identificacion: r.req(info, `identificacion${role}`, W),
    razonSocial: r.req(info, `razonSocial${role}`, W),
  };
}

function docModificadoOf(info: Node | undefined, r: Reader, W: string): NonNullable<Body['docModificado']> {
  const fecha = r.opt(info, 'fechaEmisionDocSustento');
  return {
    codDoc: r.req(info, 'codDocModificado', W),
    numero: r.req(info, 'numDocModificado', W),
    ...(fecha !== undefined ? { fechaEmision: r.date(fecha, `${W}/fechaEmisionDocSustento`) } : {}),
  };
}

function notaCredito(doc: Node, r: Reader): Body {
  const W = 'infoNotaCredito';
  const info = child(doc, W);
  const detalles = detallesOf(children(child(doc, 'detalles'), 'detalle'), r, 'codigoInterno');
  const totales = {
    sinImpuestos: r.amount(info, 'totalSinImpuestos', W),
    // A nota de crédito writes no total discount: the sum of its lines' discounts.
    descuento: formatScaled(sum(detalles.map((d) => d.descuento))),
    impuestos: impuestosOf(children(child(info, 'totalConImpuestos'), 'totalImpuesto'), r, `${W}/totalConImpuestos`),
    importeTotal: r.amount(info, 'valorModificacion', W),
  };
  checkLines(detalles, r);
  checkTotals(detalles.map((d) => d.precioTotalSinImpuesto), totales, r);
  const moneda = r.opt(info, 'moneda');
  return {
    fechaRaw: r.req(info, 'fechaEmision', W), fechaWhere: `${W}/fechaEmision`,
    receptor: receptorOf(info, r, W, 'Comprador'),
    ...(moneda !== undefined ? { moneda } : {}),
    totales, detalles, docModificado: docModificadoOf(info, r, W),
  };
}

function notaDebito(doc: Node, r: Reader): Body {
  const W = 'infoNotaDebito';
  const info = child(doc, W);
  // A nota de débito has reasons (motivos) instead of lines: each one is a line of quantity 1 at its value.
  const motivos = children(child(doc, 'motivos'), 'motivo');
  const detalles: SriDetalle[] = motivos.map((m, i) => {
    const valor = r.amount(m, 'valor', `motivos/motivo[${i + 1}]`);
    return { descripcion: r.req(m, 'razon', `motivos/motivo[${i + 1}]`), cantidad: '1', precioUnitario: valor, descuento: '0.00', precioTotalSinImpuesto: valor };
  });
  const totales = {
    sinImpuestos: r.amount(info, 'totalSinImpuestos', W),
    descuento: '0.00',
    impuestos: impuestosOf(children(child(info, 'impuestos'), 'impuesto'), r, `${W}/impuestos`),
    importeTotal: r.amount(info, 'valorTotal', W),
  };
  checkTotals(detalles.map((d) => d.precioTotalSinImpuesto), totales, r, 'los motivos');
  const moneda = r.opt(info, 'moneda');
  return {
    fechaRaw: r.req(info, 'fechaEmision', W), fechaWhere: `${W}/fechaEmision`,
    receptor: receptorOf(info, r, W, 'Comprador'),
    ...(moneda !== undefined ? { moneda } : {}),
    totales, detalles, docModificado: docModificadoOf(info, r, W),
  };
}

function retencionOf(n: Node, r: Reader, where: string, docSustento: SriDocSustento | undefined): SriRetencion {
  const ret: SriRetencion = {
    codigo: r.req(n, 'codigo', where),
    codigoRetencion: r.req(n, 'codigoRetencion', where),
    baseImponible: r.amount(n, 'baseImponible', where),
    porcentajeRetener: r.amount(n, 'porcentajeRetener', where),
    valorRetenido: r.amount(n, 'valorRetenido', where),
    ...(docSustento !== undefined ? { docSustento } : {}),
  };
  const base = toScaled(ret.baseImponible);
  const pct = toScaled(ret.porcentajeRetener);
  const valor = toScaled(ret.valorRetenido);
  if (base !== null && pct !== null && valor !== null) {
    const expected = mulScaled(base, pct) / 100n;
    if (over(expected, valor)) {
      r.problem('RETENCION_VALOR', `${where}: ${ret.baseImponible} × ${ret.porcentajeRetener} % = ${formatScaled(expected)}, no ${ret.valorRetenido}.`);
    }
  }
  return ret;
}

function retencion(doc: Node, r: Reader, version: string): Body {
  const W = 'infoCompRetencion';
  const info = child(doc, W);
  const retenciones: SriRetencion[] = [];
  if (version.startsWith('2.') || child(doc, 'docsSustento') !== undefined) {
    // 2.0.0: withholdings grouped under the document they apply to.
    children(child(doc, 'docsSustento'), 'docSustento').forEach((s, i) => {
      const where = `docsSustento/docSustento[${i + 1}]`;
      const fecha = r.opt(s, 'fechaEmisionDocSustento');
      const sustento: SriDocSustento = {
        codDocSustento: r.req(s, 'codDocSustento', where),
        numDocSustento: r.req(s, 'numDocSustento', where),
        ...(fecha !== undefined ? { fechaEmisionDocSustento: r.date(fecha, `${where}/fechaEmisionDocSustento`) } : {}),
      };
      children(child(s, 'retenciones'), 'retencion').forEach((n, j) => {
        retenciones.push(retencionOf(n, r, `${where}/retenciones/retencion[${j + 1}]`, sustento));
      });
    });
  } else {
    // 1.0.0: one list of taxes withheld, each naming its own supporting document.
    children(child(doc, 'impuestos'), 'impuesto').forEach((n, i) => {
      const numDoc = r.opt(n, 'numDocSustento');
      const fecha = r.opt(n, 'fechaEmisionDocSustento');
      const sustento: SriDocSustento | undefined = numDoc === undefined ? undefined : {
        codDocSustento: r.opt(n, 'codDocSustento') ?? '',
        numDocSustento: numDoc,
        ...(fecha !== undefined ? { fechaEmisionDocSustento: r.date(fecha, `impuestos/impuesto[${i + 1}]/fechaEmisionDocSustento`) } : {}),
      };
      retenciones.push(retencionOf(n, r, `impuestos/impuesto[${i + 1}]`, sustento));
    });
  }
  return {
    fechaRaw: r.req(info, 'fechaEmision', W), fechaWhere: `${W}/fechaEmision`,
    receptor: receptorOf(info, r, W, 'SujetoRetenido'),
    // A retención's worth is what it withholds; it has no subtotal, discount or taxes of its own.
    totales: { sinImpuestos: '0.00', descuento: '0.00', impuestos: [], importeTotal: formatScaled(sum(retenciones.map((x) => x.valorRetenido))) },
    detalles: [], retenciones,
  };
}

function guiaRemision(doc: Node, r: Reader): Body {
  const W = 'infoGuiaRemision';
  const info = child(doc, W);
  const destinatario = children(child(doc, 'destinatarios'), 'destinatario')[0];
  const detalles: SriDetalle[] = children(child(destinatario, 'detalles'), 'detalle').map((d, i) => {
    const codigo = r.opt(d, 'codigoInterno');
    return {
      ...(codigo !== undefined ? { codigoPrincipal: codigo } : {}),
      descripcion: r.req(d, 'descripcion', `destinatario/detalle[${i + 1}]`),
      cantidad: r.amount(d, 'cantidad', `destinatario/detalle[${i + 1}]`),
      precioUnitario: '0.00', descuento: '0.00', precioTotalSinImpuesto: '0.00',
    };
  });
  // A guía de remisión moves goods and states no amounts; its date is the start of the transport.
  return {
    fechaRaw: r.req(info, 'fechaIniTransporte', W), fechaWhere: `${W}/fechaIniTransporte`,
    receptor: {
      tipoIdentificacion: '',
      identificacion: r.req(destinatario, 'identificacionDestinatario', 'destinatarios/destinatario'),
      razonSocial: r.req(destinatario, 'razonSocialDestinatario', 'destinatarios/destinatario'),
    },
    totales: { sinImpuestos: '0.00', descuento: '0.00', impuestos: [], importeTotal: '0.00' },
    detalles,
  };
}

const BODIES: Readonly<Record<SriTipo, (doc: Node, r: Reader, version: string) => Body>> = {
  factura, liquidacionCompra, notaCredito, notaDebito, retencion, guiaRemision,
};

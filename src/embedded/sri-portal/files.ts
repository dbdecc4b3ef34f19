/**
 * What the SRI imitation serves as files: the RIDE (the document's printable PDF), the results report (TXT) and the
 * authorisation web service's SOAP answers and WSDL.
 */
import type { SriGeneratedDocument } from '../../sri/generate.ts';
import { authorisationXml } from '../../sri/generate.ts';
import { onePagePdf } from '../one-page-pdf.ts';

export const TIPO_LABEL: Readonly<Record<string, string>> = {
  factura: 'Factura',
  liquidacionCompra: 'Liquidación de compra de bienes y prestación de servicios',
  notaCredito: 'Notas de Crédito',
  notaDebito: 'Notas de Débito',
  retencion: 'Comprobante de Retención',
  guiaRemision: 'Guía de Remisión',
};

/**
 * A one-page PDF with the RIDE's main lines (Helvetica, WinAnsi text; onePagePdf).
 */
export function ridePdf(d: SriGeneratedDocument): Buffer {
  const lines = [
    `RIDE - ${TIPO_LABEL[d.tipo] ?? d.tipo}`,
    `${d.emisor.razonSocial}  RUC ${d.emisor.ruc}`,
    `No. ${d.serie}-${d.secuencial}   Fecha de emision ${d.fechaEmision}`,
    `Clave de acceso / Numero de autorizacion:`,
    d.claveAcceso,
    `Fecha de autorizacion ${d.fechaAutorizacion}   Ambiente PRODUCCION`,
    `Importe total USD ${d.importeTotal}`,
  ];
  const text = lines.map((l, i) => `BT /F1 11 Tf 56 ${760 - i * 18} Td (${pdfText(l)}) Tj ET`).join('\n');
  return onePagePdf(text, { width: 595, height: 842, winAnsi: true });
}

/** PDF string literal text: Latin-1 only, with its three special characters escaped. */
function pdfText(s: string): string {
  return s.normalize('NFD').replace(/[\u0300-\u036f]/g, '').replace(/[^\x20-\x7e]/g, '?').replace(/[()\\]/g, (c) => `\\${c}`);
}

/**
 * The "download report" of the results: a tab-separated text file, one line per document, with the columns of the
 * real portal's listing; CLAVE_ACCESO is the access key.
 */
export function reportTxt(docs: readonly SriGeneratedDocument[], receptorRuc: string): string {
  const head = ['COMPROBANTE', 'SERIE_COMPROBANTE', 'RUC_EMISOR', 'RAZON_SOCIAL_EMISOR', 'FECHA_EMISION', 'FECHA_AUTORIZACION',
    'TIPO_EMISION', 'IDENTIFICACION_RECEPTOR', 'CLAVE_ACCESO', 'NUMERO_AUTORIZACION', 'IMPORTE_TOTAL'];
  const rows = docs.map((d) => [
    TIPO_LABEL[d.tipo] ?? d.tipo, `${d.serie}-${d.secuencial}`, d.emisor.ruc, d.emisor.razonSocial,
    d.fechaEmision.split('-').reverse().join('/'), d.fechaAutorizacion, 'NORMAL', receptorRuc, d.claveAcceso,
    d.numeroAutorizacion, d.importeTotal,
  ].join('\t'));
  return [head.join('\t'), ...rows].join('\r\n') + '\r\n';
}

const SOAP_NS = 'http://schemas.xmlsoap.org/soap/envelope/';
const WS_NS = 'http://ec.gob.sri.ws.autorizacion';

/** The service's answer to autorizacionComprobante: one `<autorizacion>` for a known key, none for an unknown one. */
export function soapAuthorisation(clave: string, doc: SriGeneratedDocument | undefined): string {
  const autorizacion = doc
    ? authorisationXml(doc).replace(/^<\?xml[^>]*\?>\s*/, '').trimEnd()
    : '';
  return `<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="${SOAP_NS}"><soap:Body><ns2:autorizacionComprobanteResponse xmlns:ns2="${WS_NS}"><RespuestaAutorizacionComprobante><claveAccesoConsultada>${clave}</claveAccesoConsultada><numeroComprobantes>${doc ? 1 : 0}</numeroComprobantes><autorizaciones>${autorizacion}</autorizaciones></RespuestaAutorizacionComprobante></ns2:autorizacionComprobanteResponse></soap:Body></soap:Envelope>`;
}

export function soapFault(message: string): string {
  const esc = message.replace(/[&<>]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;'));
  return `<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="${SOAP_NS}"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>${esc}</faultstring></soap:Fault></soap:Body></soap:Envelope>`;
}

/** A short WSDL of the one operation, for tools that read it before calling (GET …?wsdl). */
export function wsdl(endpoint: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:tns="${WS_NS}" xmlns:xsd="http://www.w3.org/2001/XMLSchema" name="AutorizacionComprobantesOfflineService" targetNamespace="${WS_NS}">
  <types><xsd:schema targetNamespace="${WS_NS}">
    <xsd:element name="autorizacionComprobante"><xsd:complexType><xsd:sequence><xsd:element name="claveAccesoComprobante" type="xsd:string" minOccurs="0"/></xsd:sequence></xsd:complexType></xsd:element>
    <xsd:element name="autorizacionComprobanteResponse"><xsd:complexType><xsd:sequence><xsd:element name="RespuestaAutorizacionComprobante" type="xsd:anyType" minOccurs="0"/></xsd:sequence></xsd:complexType></xsd:element>
  </xsd:schema></types>
  <message name="autorizacionComprobante"><part name="parameters" element="tns:autorizacionComprobante"/></message>
  <message name="autorizacionComprobanteResponse"><part name="parameters" element="tns:autorizacionComprobanteResponse"/></message>
  <portType name="AutorizacionComprobantesOffline"><operation name="autorizacionComprobante"><input message="tns:autorizacionComprobante"/><output message="tns:autorizacionComprobanteResponse"/></operation></portType>
  <binding name="AutorizacionComprobantesOfflinePortBinding" type="tns:AutorizacionComprobantesOffline"><soap:binding transport="http://schemas.xmlsoap.org/soap/http" style="document"/>
    <operation name="autorizacionComprobante"><soap:operation soapAction=""/><input><soap:body use="literal"/></input><output><soap:body use="literal"/></output></operation></binding>
  <service name="AutorizacionComprobantesOfflineService"><port name="AutorizacionComprobantesOfflinePort" binding="tns:AutorizacionComprobantesOfflinePortBinding"><soap:address location="${endpoint}"/></port></service>
</definitions>
`;
}

/** The SOAP request a client sends for one key (tests, docs, flows). */
export function soapRequest(clave: string): string {
  return `<soapenv:Envelope xmlns:soapenv="${SOAP_NS}" xmlns:ec="${WS_NS}"><soapenv:Header/><soapenv:Body><ec:autorizacionComprobante><claveAccesoComprobante>${clave}</claveAccesoComprobante></ec:autorizacionComprobante></soapenv:Body></soapenv:Envelope>`;
}

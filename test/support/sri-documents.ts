/**
 * SRI documents for tests of the documents table, its API and its page: parser-output objects of the shape
 * (src/shared/sri-document.ts) with access keys whose check digit is right, and a way to hand them to the control
 * plane as a worker would — the XML evidence and parsed-data.json in S3, the result message on the done channel.
 */
import { createHash } from 'node:crypto';
import { keys } from '../../src/shared/keys.ts';
import { s3Uri, type BlobStore } from '../../src/shared/s3.ts';
import type { ResultArtifact, ResultMessage } from '../../src/shared/schemas.ts';
import { SRI_DOCUMENTS_KEY, SRI_FILES_KEY, type SriDocument, type SriDocumentType } from '../../src/shared/sri-document.ts';
import type { Redis } from '../../src/shared/redis.ts';

const CODE_OF_TYPE: Record<SriDocumentType, string> = {
  factura: '01', liquidacionCompra: '03', notaCredito: '04', notaDebito: '05', guiaRemision: '06', retencion: '07',
};

/** Modulo 11 with weights 2..7 from the right, as the SRI computes the 49th digit. */
export function checkDigit(first48: string): string {
  let sum = 0;
  for (let i = 0; i < first48.length; i++) sum += Number(first48[first48.length - 1 - i]) * (2 + (i % 6));
  const d = 11 - (sum % 11);
  return String(d === 11 ? 0 : d === 10 ? 1 : d);
}

export interface DocSpec {
  tipo?: SriDocumentType;
  fecha: string;
  ruc: string;
  razonSocial: string;
  serie?: string;
  secuencial: number;
  /** [codigoPorcentaje, tarifa, base, valor] of IVA lines. */
  iva?: [string, string, string, string][];
  sinImpuestos?: string;
  total?: string;
  retenciones?: [string, string][];
  nombreComercial?: string;
}

export function makeDocument(s: DocSpec): SriDocument {
  const tipo = s.tipo ?? 'factura';
  const [y, m, d] = s.fecha.split('-');
  const serie = s.serie ?? '001-001';
  const secuencial = String(s.secuencial).padStart(9, '0');
  const first48 = `${d}${m}${y}${CODE_OF_TYPE[tipo]}${s.ruc}1${serie.replace('-', '')}${secuencial}${'12345678'}1`;
  const claveAcceso = first48 + checkDigit(first48);
  const impuestos = (s.iva ?? []).map(([codigoPorcentaje, tarifa, baseImponible, valor]) => ({ codigo: '2', codigoPorcentaje, tarifa, baseImponible, valor }));
  return {
    claveAcceso, claveAccesoValida: true, tipo, version: tipo === 'retencion' ? '2.0.0' : '1.1.0', ambiente: '1',
    estado: 'AUTORIZADO', numeroAutorizacion: claveAcceso, fechaAutorizacion: `${s.fecha}T10:00:00-05:00`,
    emisor: { ruc: s.ruc, razonSocial: s.razonSocial, ...(s.nombreComercial ? { nombreComercial: s.nombreComercial } : {}) },
    receptor: { tipoIdentificacion: '04', identificacion: '1790012345001', razonSocial: 'IMPORTADORA ANDINA S.A.' },
    serie, secuencial, fechaEmision: s.fecha, moneda: 'DOLAR',
    totales: { sinImpuestos: s.sinImpuestos ?? '0.00', descuento: '0.00', impuestos, importeTotal: s.total ?? '0.00' },
    detalles: [{ codigoPrincipal: 'P1', descripcion: 'Producto', cantidad: '1', precioUnitario: s.sinImpuestos ?? '0.00', descuento: '0.00', precioTotalSinImpuesto: s.sinImpuestos ?? '0.00' }],
    ...(s.retenciones ? {
      retenciones: s.retenciones.map(([baseImponible, valorRetenido]) => ({ codigo: '2', codigoRetencion: '3', baseImponible, porcentajeRetener: '30', valorRetenido })),
    } : {}),
    problemas: [],
  };
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * Publishes a `done` result of `jobId` as a worker of the SRI pack would: each document's `{claveAcceso}.xml` and
 * parsed-data.json (`extra` merged in) in the results bucket, listed in `artifacts`. Returns the XML bytes by key.
 */
export async function publishDocuments(ctx: { redis: Redis; blobStore: BlobStore; bucket: string }, who: { orgId: string; userId: string }, jobId: string,
  docs: readonly unknown[], extra: Record<string, unknown> = {}): Promise<Map<string, Buffer>> {
  const prefix = `results/${who.orgId}/${who.userId}/${jobId}/`;
  const artifacts: ResultArtifact[] = [];
  const xmls = new Map<string, Buffer>();
  for (const doc of docs) {
    const clave = (doc as { claveAcceso?: unknown }).claveAcceso;
    if (typeof clave !== 'string' || !/^\d{49}$/.test(clave)) continue;
    const body = Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n<autorizacion><estado>AUTORIZADO</estado><numeroAutorizacion>${clave}</numeroAutorizacion></autorizacion>\n`);
    await ctx.blobStore.put(ctx.bucket, `${prefix}${clave}.xml`, body, 'application/xml');
    artifacts.push({ name: `${clave}.xml`, kind: 'download', uri: s3Uri(ctx.bucket, `${prefix}${clave}.xml`), bytes: body.length, sha256: sha256(body), contentType: 'application/xml' });
    xmls.set(clave, body);
  }
  const parsed = Buffer.from(JSON.stringify({
    [SRI_DOCUMENTS_KEY]: docs,
    [SRI_FILES_KEY]: [...xmls.keys()].map((clave) => ({ file: `${clave}.xml`, claveAcceso: clave })),
    ...extra,
  }));
  await ctx.blobStore.put(ctx.bucket, `${prefix}parsed-data.json`, parsed, 'application/json');
  const parsedUri = s3Uri(ctx.bucket, `${prefix}parsed-data.json`);
  artifacts.push({ name: 'parsed-data.json', kind: 'parsedData', uri: parsedUri, bytes: parsed.length, sha256: sha256(parsed), contentType: 'application/json' });
  const result: ResultMessage = {
    jobId, orgId: who.orgId, userId: who.userId, providerId: 'demo', success: true, status: 'done', duration: 10, attempt: 1,
    workerId: 'worker-sri', finishedAt: new Date().toISOString(),
    files: { log: s3Uri(ctx.bucket, `${prefix}execution.log`), screenshots: [], parsedData: parsedUri }, artifacts,
  };
  await ctx.redis.publish(keys.orgDone(who.orgId), JSON.stringify(result));
  return xmls;
}

/**
 * The contract between the SRI parser's output (issue 16, src/sri/parse.ts) and the control plane's documents table:
 * one object per electronic document, as the worker writes it into the job's parsed data (under SRI_DOCUMENTS_KEY)
 * and as the results listener checks it before keeping it. Both planes import this file; it imports neither.
 *
 * Amounts are decimal strings exactly as the XML wrote them (never floats: "12.50" stays "12.50"); dates are ISO
 * (fechaEmision "YYYY-MM-DD", fechaAutorizacion an ISO 8601 date-time). Optional fields may be absent or null (a
 * bare document has no authorisation block), so that a parser writing `null` for "none" is not refused.
 */
import { z } from 'zod';

/** The document types the SRI issues electronically (the parser's `tipo`). */
export const SRI_DOCUMENT_TYPES = ['factura', 'notaCredito', 'notaDebito', 'retencion', 'liquidacionCompra', 'guiaRemision'] as const;
export const SriDocumentType = z.enum(SRI_DOCUMENT_TYPES);
export type SriDocumentType = z.infer<typeof SriDocumentType>;

/**
 * Where the worker puts the parser's output in parsed data: `{ sriDocuments: SriDocument[], sriFiles: SriParsedFile[] }`
 * next to whatever the flow set itself (src/execution-plane/job/parse-evidence.ts).
 */
export const SRI_DOCUMENTS_KEY = 'sriDocuments';
export const SRI_FILES_KEY = 'sriFiles';

/** A decimal as written in the XML: digits, an optional sign and fraction; bounded so one field cannot be huge. */
export const DecimalString = z.string().max(40).regex(/^-?\d{1,24}(\.\d{1,12})?$/, 'must be a decimal number written with a dot, e.g. "12.50"');
/** The 49 digits of an access key (clave de acceso). */
export const ClaveAcceso = z.string().regex(/^\d{49}$/, 'must be the 49 digits of an access key');
const IsoDate = z.iso.date();
const IsoDateTime = z.iso.datetime({ offset: true, local: true });
const Text = (max = 300) => z.string().max(max);

export const SriTax = z.object({
  codigo: Text(10),
  codigoPorcentaje: Text(10),
  tarifa: DecimalString.nullish(),
  baseImponible: DecimalString,
  valor: DecimalString,
});
export type SriTax = z.infer<typeof SriTax>;

export const SriDetail = z.object({
  codigoPrincipal: Text().nullish(),
  descripcion: Text(1000),
  cantidad: DecimalString,
  precioUnitario: DecimalString,
  descuento: DecimalString,
  precioTotalSinImpuesto: DecimalString,
});

export const SriWithholding = z.object({
  codigo: Text(10),
  codigoRetencion: Text(20),
  baseImponible: DecimalString,
  porcentajeRetener: DecimalString,
  valorRetenido: DecimalString,
  docSustento: z.unknown().optional(),
});
export type SriWithholding = z.infer<typeof SriWithholding>;

export const SriProblem = z.object({ codigo: Text(100), mensaje: Text(2000) });

export const SriDocument = z.object({
  claveAcceso: ClaveAcceso,
  claveAccesoValida: z.boolean(),
  tipo: SriDocumentType,
  version: Text(20),
  ambiente: Text(40),
  estado: Text(60).nullish(),
  numeroAutorizacion: Text(100).nullish(),
  fechaAutorizacion: IsoDateTime.nullish(),
  emisor: z.object({ ruc: Text(20), razonSocial: Text(), nombreComercial: Text().nullish() }),
  receptor: z.object({ tipoIdentificacion: Text(10), identificacion: Text(20), razonSocial: Text() }),
  serie: z.string().regex(/^\d{3}-\d{3}$/, 'must be establecimiento-puntoEmision, e.g. "001-001"'),
  secuencial: z.string().regex(/^\d{1,9}$/, 'must be up to 9 digits'),
  fechaEmision: IsoDate,
  moneda: Text(40),
  totales: z.object({
    sinImpuestos: DecimalString,
    descuento: DecimalString,
    impuestos: z.array(SriTax).max(100),
    importeTotal: DecimalString,
  }),
  detalles: z.array(SriDetail).max(10_000),
  retenciones: z.array(SriWithholding).max(1000).nullish(),
  infoAdicional: z.record(z.string(), z.string()).nullish(),
  problemas: z.array(SriProblem).max(1000),
});
export type SriDocument = z.infer<typeof SriDocument>;

/** One XML evidence file the worker read: the document it held, or why none came of it. */
export const SriParsedFile = z.object({
  file: z.string(),
  claveAcceso: z.string().optional(),
  error: z.string().optional(),
});
export type SriParsedFile = z.infer<typeof SriParsedFile>;

/** A document of parsed data that did not pass SriDocument, with the reason (for the log). */
export interface RejectedDocument { index: number; claveAcceso: string | undefined; reason: string }

/**
 * The documents of a job's parsed data: those that match SriDocument, and why each other one was left out. Never
 * throws: parsed data comes from a worker through Redis and S3, and a bad entry must not lose the good ones.
 */
export function documentsOfParsedData(parsed: unknown): { documents: SriDocument[]; rejected: RejectedDocument[] } {
  const list = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>)[SRI_DOCUMENTS_KEY] : undefined;
  if (list === undefined) return { documents: [], rejected: [] };
  if (!Array.isArray(list)) return { documents: [], rejected: [{ index: -1, claveAcceso: undefined, reason: `${SRI_DOCUMENTS_KEY} is not an array` }] };
  const documents: SriDocument[] = [];
  const rejected: RejectedDocument[] = [];
  const seen = new Set<string>();
  list.forEach((item, index) => {
    const r = SriDocument.safeParse(item);
    const clave = (item as { claveAcceso?: unknown } | null)?.claveAcceso;
    if (!r.success) {
      const reason = r.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
      rejected.push({ index, claveAcceso: typeof clave === 'string' ? clave.slice(0, 60) : undefined, reason });
    } else if (seen.has(r.data.claveAcceso)) {
      // The same document twice in one job (fetched through both routes): one record, counted once.
      rejected.push({ index, claveAcceso: r.data.claveAcceso, reason: 'the same access key appears earlier in this job\'s parsed data' });
    } else {
      seen.add(r.data.claveAcceso);
      documents.push(r.data);
    }
  });
  return { documents, rejected };
}

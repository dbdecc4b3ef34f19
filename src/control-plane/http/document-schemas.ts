/**
 * The schemas of the documents endpoints (GET /api/documents, /api/documents/{claveAcceso}, /api/documents/export):
 * the filters they share and what they answer. Kept beside schemas.ts so the SRI pack's API reads as one piece.
 */
import { z } from 'zod';
import { SriDocument, SriDocumentType } from '../../shared/sri-document.ts';

const Timestamp = z.iso.datetime();
const Amount = z.string().describe('A decimal, exact, with a dot ("1234.50").');

/** The filters of the list and of the export. Dates are the documents' fechaEmision (the issue date), both ends included. */
const DocumentFilterFields = {
  from: z.iso.date().optional().describe('Only documents issued on or after this day (YYYY-MM-DD).'),
  to: z.iso.date().optional().describe('Only documents issued on or before this day (YYYY-MM-DD, included).'),
  year: z.coerce.number().int().min(2000).max(2100).optional().describe('Only documents issued in this year (or, with month, this month); not with from/to.'),
  month: z.coerce.number().int().min(1).max(12).optional().describe('With year: only documents issued in this month.'),
  type: SriDocumentType.optional().describe('Only documents of this type.'),
  issuerRuc: z.string().regex(/^\d{13}$/, 'must be the 13 digits of a RUC').optional().describe('Only documents of this issuer (its RUC).'),
  q: z.string().trim().max(100).optional().describe('Text found in the issuer\'s name or trade name, the document number (001-001-000000123) or the access key; case-insensitive.'),
};
type FilterInput = { from?: string | undefined; to?: string | undefined; year?: number | undefined; month?: number | undefined };
const checkPeriod = (q: FilterInput, ctx: z.RefinementCtx) => {
  if (q.month !== undefined && q.year === undefined) ctx.addIssue({ code: 'custom', message: 'month needs year', path: ['month'] });
  if (q.year !== undefined && (q.from !== undefined || q.to !== undefined)) {
    ctx.addIssue({ code: 'custom', message: 'give either year (and month) or from/to, not both', path: ['year'] });
  }
  if (q.from !== undefined && q.to !== undefined && q.from > q.to) ctx.addIssue({ code: 'custom', message: 'must not be before from', path: ['to'] });
};

export const DocumentsQuery = z.object({
  page: z.coerce.number().int().min(1).max(100_000).default(1).describe('The page, from 1.'),
  pageSize: z.coerce.number().int().min(1).max(100).default(20).describe('Documents per page.'),
  ...DocumentFilterFields,
}).superRefine(checkPeriod);

export const DocumentsExportQuery = z.object({
  format: z.enum(['csv', 'xlsx']).default('csv').describe('csv (UTF-8, comma-separated, Spanish headers) or xlsx.'),
  ...DocumentFilterFields,
}).superRefine(checkPeriod);

export const ClaveParams = z.object({ claveAcceso: z.string().min(1).max(64).describe('The document\'s 49-digit access key.') });

export const DocumentSummary = z.object({
  claveAcceso: z.string(),
  claveAccesoValida: z.boolean().describe('Whether the access key\'s check digit (modulo 11) is right.'),
  type: SriDocumentType,
  version: z.string(), ambiente: z.string(),
  estado: z.string().nullable(), numeroAutorizacion: z.string().nullable(), fechaAutorizacion: Timestamp.nullable(),
  issuer: z.object({ ruc: z.string(), razonSocial: z.string(), nombreComercial: z.string().nullable() }),
  receptor: z.object({ tipoIdentificacion: z.string(), identificacion: z.string(), razonSocial: z.string() }),
  serie: z.string().describe('establecimiento-puntoEmision, e.g. 001-001.'), secuencial: z.string(),
  fechaEmision: z.iso.date(), moneda: z.string(),
  subtotal: Amount.describe('totalSinImpuestos.'), descuento: Amount,
  iva: Amount.describe('The sum of the VAT (tax code 2) of the document.'),
  importeTotal: Amount,
  retenido: Amount.describe('The sum of the withholdings (valorRetenido) of a comprobante de retención; 0 for other types.'),
  problems: z.number().int().describe('How many problems the parser reported (check digit, totals that do not add up…); the detail lists them.'),
  firstJobId: z.string().describe('The job that first fetched it.'), lastJobId: z.string(),
  firstSeenAt: Timestamp, lastSeenAt: Timestamp,
  seenAgain: z.number().int().describe('How many later jobs fetched it again (0: only the first).'),
}).meta({ id: 'DocumentSummary' });

export const DocumentTotals = z.object({
  count: z.number().int(), subtotal: Amount, descuento: Amount, iva: Amount, importeTotal: Amount, retenido: Amount,
}).meta({ id: 'DocumentTotals', description: 'Sums over every document matching the filter, on every page.' });

export const DocumentList = z.object({
  documents: z.array(DocumentSummary), page: z.number().int(), pageSize: z.number().int(),
  total: z.number().int().describe('Documents matching the filters, on every page.'),
  totals: DocumentTotals,
});

export const DocumentDetail = DocumentSummary.extend({
  document: SriDocument.describe('The parser\'s whole object: lines, taxes, withholdings, additional information and problems.'),
  xml: z.object({
    name: z.string(),
    url: z.string().describe('A presigned download link of the authorised XML as the portal served it, valid for ARTIFACT_URL_TTL_SECONDS.'),
  }).nullable().describe('The evidence file the document was read from; null when the job kept none.'),
}).meta({ id: 'DocumentDetail' });

/**
 * The SRI documents of the caller's organisation (docs/documents.md): the list with filters, paging and totals, one
 * document with a link to its authorised XML, and the ledger export (CSV; XLSX once its library is installed).
 */
import { basename } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { SriError } from '../../../shared/errors.ts';
import { parseS3Uri } from '../../../shared/s3.ts';
import type { ApiContext } from '../../context.ts';
import { exportDocuments, findDocument, listDocuments, type DocumentFilter, type DocumentRow } from '../../db/queries/documents.ts';
import { CSV_CONTENT_TYPE, ledgerToCsv } from '../../documents/export/csv.ts';
import { ledgerToXlsx, XLSX_CONTENT_TYPE } from '../../documents/export/xlsx.ts';
import { buildLedger } from '../../documents/ledger.ts';
import { authOf } from '../auth.ts';
import { ClaveParams, DocumentDetail, DocumentList, DocumentsExportQuery, DocumentsQuery, type DocumentSummary } from '../document-schemas.ts';
import { endpoint, json, type ContractTypeProvider } from '../openapi.ts';

/** One export holds at most this many documents (EXPORT_TOO_LARGE beyond): a year of a busy company's purchases. */
export const EXPORT_MAX_ROWS = 50_000;

/** A file answer (Buffer): documented as binary text of its media type. */
const FileAnswer = (description: string) => z.custom<Buffer>((v) => Buffer.isBuffer(v)).meta({ type: 'string', format: 'binary', description });

const iso = (d: Date | string | null) => (d === null ? null : new Date(d).toISOString());

export function documentJson(d: DocumentRow): z.infer<typeof DocumentSummary> {
  return {
    claveAcceso: d.clave_acceso, claveAccesoValida: d.clave_acceso_valida, type: d.tipo, version: d.version, ambiente: d.ambiente,
    estado: d.estado, numeroAutorizacion: d.numero_autorizacion, fechaAutorizacion: iso(d.fecha_autorizacion),
    issuer: { ruc: d.emisor_ruc, razonSocial: d.emisor_razon_social, nombreComercial: d.emisor_nombre_comercial },
    receptor: { tipoIdentificacion: d.receptor_tipo_identificacion, identificacion: d.receptor_identificacion, razonSocial: d.receptor_razon_social },
    serie: d.serie, secuencial: d.secuencial, fechaEmision: d.fecha_emision, moneda: d.moneda,
    subtotal: d.subtotal, descuento: d.descuento, iva: d.iva, importeTotal: d.importe_total, retenido: d.retenido, problems: d.problemas,
    firstJobId: d.first_job_id, lastJobId: d.last_job_id, firstSeenAt: new Date(d.first_seen_at).toISOString(),
    lastSeenAt: new Date(d.last_seen_at).toISOString(), seenAgain: d.seen_again,
  };
}

const lastDayOf = (year: number, month: number) => new Date(Date.UTC(year, month, 0)).getUTCDate();
const pad = (n: number) => String(n).padStart(2, '0');

/** The query's filters as the database takes them: year (+ month) becomes the period's first and last day. */
function filterOf(q: { from?: string | undefined; to?: string | undefined; year?: number | undefined; month?: number | undefined; type?: DocumentFilter['tipo']; issuerRuc?: string | undefined; q?: string | undefined }): DocumentFilter {
  let { from, to } = q;
  if (q.year !== undefined) {
    from = q.month === undefined ? `${q.year}-01-01` : `${q.year}-${pad(q.month)}-01`;
    to = q.month === undefined ? `${q.year}-12-31` : `${q.year}-${pad(q.month)}-${pad(lastDayOf(q.year, q.month))}`;
  }
  return {
    ...(from === undefined ? {} : { from }), ...(to === undefined ? {} : { to }),
    ...(q.type === undefined ? {} : { tipo: q.type }), ...(q.issuerRuc === undefined ? {} : { emisorRuc: q.issuerRuc }),
    ...(q.q === undefined || q.q === '' ? {} : { q: q.q }),
  };
}

/** `comprobantes-2026-11.csv`, `comprobantes-2026-11-01_2026-11-15.csv`, `comprobantes.csv`. */
function exportFileName(f: DocumentFilter, ext: string): string {
  const monthly = f.from && f.to && f.from.endsWith('-01') && f.from.slice(0, 7) === f.to.slice(0, 7)
    && Number(f.to.slice(8)) === lastDayOf(Number(f.from.slice(0, 4)), Number(f.from.slice(5, 7)));
  const period = monthly ? f.from!.slice(0, 7) : [f.from, f.to].filter(Boolean).join('_');
  return `comprobantes${period ? `-${period}` : ''}.${ext}`;
}

export function documentRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const r = app.withTypeProvider<ContractTypeProvider>();
  const preValidation = ctx.tokens.hook();

  r.route({
    ...endpoint('GET', '/api/documents', {
      operationId: 'listDocuments', tag: 'documents', access: 'user', querystring: DocumentsQuery,
      summary: 'The organisation\'s SRI documents, newest issue date first, paged; optionally of a period, a type, an issuer or matching a text; with the totals of all that match.',
      responses: { 200: json('One page of documents, how many match in all, and their sums.', DocumentList) },
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      const { page, pageSize } = req.query;
      const { documents, totals } = await ctx.db.withOrg(orgId, (tx) => listDocuments(tx, page, pageSize, filterOf(req.query)));
      return { documents: documents.map(documentJson), page, pageSize, total: totals.count, totals };
    },
  });

  r.route({
    ...endpoint('GET', '/api/documents/export', {
      operationId: 'exportDocuments', tag: 'documents', access: 'user', querystring: DocumentsExportQuery,
      summary: 'Every document matching the filters as a ledger an accountant can use (CSV, or XLSX), Spanish headers, oldest first.',
      description: 'Columns: Fecha de emisión, Tipo de comprobante, Serie-Secuencial, RUC emisor, Razón social emisor, Clave de acceso, '
        + 'Número de autorización, one "Subtotal N %" per VAT rate present (0 % always), Subtotal no objeto / exento de IVA when present, '
        + 'Descuento, IVA, Total, Retenciones. Text cells that a spreadsheet would run as a formula (starting with = + - @) get a leading apostrophe.',
      responses: {
        200: {
          description: 'The ledger, as an attachment.',
          content: {
            'text/csv': { schema: FileAnswer('UTF-8 with a byte-order mark, comma-separated, CRLF, every field quoted; amounts with a dot.') },
            [XLSX_CONTENT_TYPE]: { schema: FileAnswer('One sheet, the same columns.') },
          },
        },
      },
      errors: ['EXPORT_TOO_LARGE'],
    }),
    preValidation,
    handler: async (req, reply) => {
      const { orgId } = authOf(req);
      const filter = filterOf(req.query);
      const docs = await ctx.db.withOrg(orgId, (tx) => exportDocuments(tx, filter, EXPORT_MAX_ROWS + 1));
      if (docs.length > EXPORT_MAX_ROWS) {
        throw new SriError('EXPORT_TOO_LARGE', `More than ${EXPORT_MAX_ROWS} documents match; narrow the filter (a shorter period, one type or one issuer) and export each part.`);
      }
      const ledger = buildLedger(docs);
      const csv = req.query.format === 'csv';
      const body = csv ? ledgerToCsv(ledger) : await ledgerToXlsx(ledger);
      reply.type(csv ? CSV_CONTENT_TYPE : XLSX_CONTENT_TYPE)
        .header('content-disposition', `attachment; filename="${exportFileName(filter, req.query.format)}"`)
        .header('cache-control', 'private, no-store');
      return reply.send(body);
    },
  });

  r.route({
    ...endpoint('GET', '/api/documents/:claveAcceso', {
      operationId: 'getDocument', tag: 'documents', access: 'user', params: ClaveParams,
      summary: 'One document: its fields, the parser\'s whole object and a link to its authorised XML.',
      responses: { 200: json('The document.', z.object({ document: DocumentDetail })) },
      errors: ['NOT_FOUND'],
    }),
    preValidation,
    handler: async (req) => {
      const { orgId } = authOf(req);
      const doc = await ctx.db.withOrg(orgId, (tx) => findDocument(tx, req.params.claveAcceso));
      if (!doc) throw new SriError('NOT_FOUND', `No document with access key ${req.params.claveAcceso.slice(0, 64)} in your organisation.`);
      let xml: { name: string; url: string } | null = null;
      const loc = doc.evidence_uri ? parseS3Uri(doc.evidence_uri) : undefined;
      // Written by the results listener from a worker's message: linked only inside this organisation's prefix.
      if (loc && loc.bucket === ctx.config.s3ResultsBucket && loc.key.startsWith(`results/${orgId}/`) && !loc.key.includes('..')) {
        const name = basename(loc.key);
        xml = { name, url: await ctx.blobStore.presignGet(loc.bucket, loc.key, ctx.config.artifactUrlTtlSeconds, { fileName: name, contentType: 'application/xml' }) };
      }
      return { document: { ...documentJson(doc), document: doc.document, xml } };
    },
  });
}

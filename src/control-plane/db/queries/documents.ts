/**
 * The SRI documents an organisation's jobs fetched (0014_documents.sql): one row per access key, upserted by the
 * results listener from a final job's parsed data, read by GET /api/documents, its totals and its exports.
 * Amounts leave PostgreSQL as text (`::text`), never as JavaScript numbers: "0.10" + "0.20" must stay "0.30".
 */
import type { SriDocument, SriDocumentType } from '../../../shared/sri-document.ts';
import type { Tx } from '../types.ts';

export interface DocumentRow {
  clave_acceso: string;
  clave_acceso_valida: boolean;
  tipo: SriDocumentType;
  version: string;
  ambiente: string;
  estado: string | null;
  numero_autorizacion: string | null;
  fecha_autorizacion: Date | null;
  emisor_ruc: string;
  emisor_razon_social: string;
  emisor_nombre_comercial: string | null;
  receptor_tipo_identificacion: string;
  receptor_identificacion: string;
  receptor_razon_social: string;
  serie: string;
  secuencial: string;
  /** YYYY-MM-DD */
  fecha_emision: string;
  moneda: string;
  subtotal: string;
  descuento: string;
  iva: string;
  importe_total: string;
  retenido: string;
  problemas: number;
  evidence_uri: string | null;
  first_job_id: string;
  last_job_id: string;
  first_seen_at: Date;
  last_seen_at: Date;
  seen_again: number;
}

/** The row with the parser's whole object (detail view, exports). */
export type DocumentWithBody = DocumentRow & { document: SriDocument };

const COLUMNS = `clave_acceso, clave_acceso_valida, tipo, version, ambiente, estado, numero_autorizacion, fecha_autorizacion,
  emisor_ruc, emisor_razon_social, emisor_nombre_comercial, receptor_tipo_identificacion, receptor_identificacion,
  receptor_razon_social, serie, secuencial, to_char(fecha_emision, 'YYYY-MM-DD') AS fecha_emision, moneda,
  subtotal::text AS subtotal, descuento::text AS descuento, iva::text AS iva, importe_total::text AS importe_total,
  retenido::text AS retenido, problemas, evidence_uri, first_job_id, last_job_id, first_seen_at, last_seen_at, seen_again`;

export type UpsertOutcome = 'inserted' | 'seen-again' | 'same-job';

/**
 * Records one document fetched by `jobId`. A new access key is inserted; a known one fetched by another job is
 * counted as seen again (last job, last seen, the newer parse and its evidence); the same job recorded again (a job
 * retried after its result was kept) changes nothing. The derived amounts (`iva`, `retenido`) are summed by
 * PostgreSQL from the object itself, in numeric.
 */
export async function upsertDocument(tx: Tx, orgId: string, jobId: string, doc: SriDocument, evidenceUri: string | null): Promise<UpsertOutcome> {
  const rows = await tx.query<{ inserted: boolean; changed: boolean }>(`
    WITH d AS (SELECT $3::jsonb AS j)
    INSERT INTO documents AS t (org_id, clave_acceso, clave_acceso_valida, tipo, version, ambiente, estado, numero_autorizacion,
      fecha_autorizacion, emisor_ruc, emisor_razon_social, emisor_nombre_comercial, receptor_tipo_identificacion,
      receptor_identificacion, receptor_razon_social, serie, secuencial, fecha_emision, moneda, subtotal, descuento, iva,
      importe_total, retenido, problemas, document, evidence_uri, first_job_id, last_job_id)
    SELECT $1, j->>'claveAcceso', (j->>'claveAccesoValida')::boolean, j->>'tipo', j->>'version', j->>'ambiente', j->>'estado',
      j->>'numeroAutorizacion', (j->>'fechaAutorizacion')::timestamptz, j->'emisor'->>'ruc', j->'emisor'->>'razonSocial',
      j->'emisor'->>'nombreComercial', j->'receptor'->>'tipoIdentificacion', j->'receptor'->>'identificacion',
      j->'receptor'->>'razonSocial', j->>'serie', j->>'secuencial', (j->>'fechaEmision')::date, j->>'moneda',
      (j->'totales'->>'sinImpuestos')::numeric, (j->'totales'->>'descuento')::numeric,
      COALESCE((SELECT sum((i->>'valor')::numeric) FROM jsonb_array_elements(j->'totales'->'impuestos') i WHERE i->>'codigo' = '2'), 0),
      (j->'totales'->>'importeTotal')::numeric,
      COALESCE((SELECT sum((r->>'valorRetenido')::numeric) FROM jsonb_array_elements(CASE WHEN jsonb_typeof(j->'retenciones') = 'array' THEN j->'retenciones' ELSE '[]'::jsonb END) r), 0),
      jsonb_array_length(j->'problemas'), j, $4, $2, $2
    FROM d
    ON CONFLICT (org_id, clave_acceso) DO UPDATE SET
      clave_acceso_valida = EXCLUDED.clave_acceso_valida, tipo = EXCLUDED.tipo, version = EXCLUDED.version,
      ambiente = EXCLUDED.ambiente, estado = EXCLUDED.estado, numero_autorizacion = EXCLUDED.numero_autorizacion,
      fecha_autorizacion = EXCLUDED.fecha_autorizacion, emisor_ruc = EXCLUDED.emisor_ruc,
      emisor_razon_social = EXCLUDED.emisor_razon_social, emisor_nombre_comercial = EXCLUDED.emisor_nombre_comercial,
      receptor_tipo_identificacion = EXCLUDED.receptor_tipo_identificacion, receptor_identificacion = EXCLUDED.receptor_identificacion,
      receptor_razon_social = EXCLUDED.receptor_razon_social, serie = EXCLUDED.serie, secuencial = EXCLUDED.secuencial,
      fecha_emision = EXCLUDED.fecha_emision, moneda = EXCLUDED.moneda, subtotal = EXCLUDED.subtotal,
      descuento = EXCLUDED.descuento, iva = EXCLUDED.iva, importe_total = EXCLUDED.importe_total, retenido = EXCLUDED.retenido,
      problemas = EXCLUDED.problemas, document = EXCLUDED.document,
      evidence_uri = COALESCE(EXCLUDED.evidence_uri, t.evidence_uri),
      last_job_id = EXCLUDED.last_job_id, last_seen_at = now(), seen_again = t.seen_again + 1
    WHERE t.last_job_id <> EXCLUDED.last_job_id AND t.first_job_id <> EXCLUDED.last_job_id
    RETURNING (xmax = 0) AS inserted, true AS changed`,
  [orgId, jobId, JSON.stringify(doc), evidenceUri]);
  const row = rows[0];
  if (!row) return 'same-job';
  return row.inserted ? 'inserted' : 'seen-again';
}

/** What GET /api/documents narrows the list to; absent fields do not filter. */
export interface DocumentFilter {
  /** fechaEmision on or after (YYYY-MM-DD, inclusive). */
  from?: string;
  /** fechaEmision on or before (YYYY-MM-DD, inclusive). */
  to?: string;
  tipo?: SriDocumentType;
  emisorRuc?: string;
  /** Case-insensitive substring of the issuer's name or trade name, "serie-secuencial", or the access key. */
  q?: string;
}

function whereOf(filter: DocumentFilter): { sql: string; params: unknown[]; bind: (v: unknown) => string } {
  const where: string[] = [];
  const params: unknown[] = [];
  const bind = (v: unknown) => `$${params.push(v)}`;
  if (filter.from !== undefined) where.push(`fecha_emision >= ${bind(filter.from)}::date`);
  if (filter.to !== undefined) where.push(`fecha_emision <= ${bind(filter.to)}::date`);
  if (filter.tipo !== undefined) where.push(`tipo = ${bind(filter.tipo)}`);
  if (filter.emisorRuc !== undefined) where.push(`emisor_ruc = ${bind(filter.emisorRuc)}`);
  if (filter.q !== undefined && filter.q !== '') {
    // The user's text is a literal: LIKE's own wildcards in it match themselves.
    const like = bind(`%${filter.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    where.push(`(emisor_razon_social ILIKE ${like} OR COALESCE(emisor_nombre_comercial, '') ILIKE ${like}
      OR (serie || '-' || secuencial) ILIKE ${like} OR clave_acceso ILIKE ${like})`);
  }
  return { sql: where.length ? `WHERE ${where.join(' AND ')}` : '', params, bind };
}

/** Sums over every document matching a filter (all pages), as decimal strings. */
export interface DocumentTotals {
  count: number;
  subtotal: string;
  descuento: string;
  iva: string;
  importeTotal: string;
  retenido: string;
}

/**
 * One page of documents, newest first (fechaEmision, then access key), how many match in all, and the sums over
 * all of them. Row-level security adds `org_id = …`; the index documents_org_fecha_idx serves the order.
 */
export async function listDocuments(tx: Tx, page: number, pageSize: number, filter: DocumentFilter = {}): Promise<{ documents: DocumentRow[]; totals: DocumentTotals }> {
  const { sql, params, bind } = whereOf(filter);
  const totals = (await tx.query<DocumentTotals>(`SELECT count(*)::int AS count, COALESCE(sum(subtotal), 0)::text AS subtotal,
      COALESCE(sum(descuento), 0)::text AS descuento, COALESCE(sum(iva), 0)::text AS iva,
      COALESCE(sum(importe_total), 0)::text AS "importeTotal", COALESCE(sum(retenido), 0)::text AS retenido
    FROM documents ${sql}`, params))[0]!;
  const documents = await tx.query<DocumentRow>(`SELECT ${COLUMNS} FROM documents ${sql}
    ORDER BY fecha_emision DESC, clave_acceso DESC LIMIT ${bind(pageSize)} OFFSET ${bind((page - 1) * pageSize)}`, params);
  return { documents, totals };
}

/** Every document matching a filter, oldest first (an accountant's ledger order), with the parser's object; at most `limit`. */
export async function exportDocuments(tx: Tx, filter: DocumentFilter, limit: number): Promise<DocumentWithBody[]> {
  const { sql, params, bind } = whereOf(filter);
  return tx.query<DocumentWithBody>(`SELECT ${COLUMNS}, document FROM documents ${sql}
    ORDER BY fecha_emision, serie, secuencial, clave_acceso LIMIT ${bind(limit)}`, params);
}

export async function findDocument(tx: Tx, claveAcceso: string): Promise<DocumentWithBody | undefined> {
  return (await tx.query<DocumentWithBody>(`SELECT ${COLUMNS}, document FROM documents WHERE clave_acceso = $1`, [claveAcceso]))[0];
}

-- 0014_documents: the SRI's electronic documents an organisation's jobs fetched, one row per (organisation, access
-- key) (docs/documents.md). The results listener fills it from the parser's output in a final job's parsed data
-- (src/shared/sri-document.ts): a document fetched again by a later job updates its row — last_job_id, last_seen_at,
-- seen_again + 1 — and is never a second row; the same job recorded again (a retried job) does not count twice.
--
-- The normalised columns are what lists, filters, totals and exports read; `document` keeps the parser's whole
-- object (lines, taxes, withholdings, problems) as it arrived. Amounts are numeric (exact, as the XML wrote them);
-- `iva` (sum of the taxes with codigo 2) and `retenido` (sum of valorRetenido) are computed by the upsert from the
-- same object, so totals are sums of columns.
-- first_job_id / last_job_id name jobs without a foreign key: a document outlives the job record it came from.
-- documents is organisation data: RLS as in 0001 (policy for sri_app by app.org_id, all rows for the owner).

CREATE TABLE documents (
  org_id                     text NOT NULL REFERENCES organisations (id),
  clave_acceso               text NOT NULL CHECK (clave_acceso ~ '^[0-9]{49}$'),
  clave_acceso_valida        boolean NOT NULL,
  tipo                       text NOT NULL CHECK (tipo IN ('factura', 'notaCredito', 'notaDebito', 'retencion', 'liquidacionCompra', 'guiaRemision')),
  version                    text NOT NULL,
  ambiente                   text NOT NULL,
  estado                     text,
  numero_autorizacion        text,
  fecha_autorizacion         timestamptz,
  emisor_ruc                 text NOT NULL,
  emisor_razon_social        text NOT NULL,
  emisor_nombre_comercial    text,
  receptor_tipo_identificacion text NOT NULL,
  receptor_identificacion    text NOT NULL,
  receptor_razon_social      text NOT NULL,
  serie                      text NOT NULL,
  secuencial                 text NOT NULL,
  fecha_emision              date NOT NULL,
  moneda                     text NOT NULL,
  subtotal                   numeric NOT NULL,
  descuento                  numeric NOT NULL,
  iva                        numeric NOT NULL,
  importe_total              numeric NOT NULL,
  retenido                   numeric NOT NULL,
  problemas                  integer NOT NULL,
  document                   jsonb NOT NULL,
  evidence_uri               text,
  first_job_id               text NOT NULL,
  last_job_id                text NOT NULL,
  first_seen_at              timestamptz NOT NULL DEFAULT now(),
  last_seen_at               timestamptz NOT NULL DEFAULT now(),
  seen_again                 integer NOT NULL DEFAULT 0,
  PRIMARY KEY (org_id, clave_acceso)
);
-- The list's order (newest document first) and its period filter.
CREATE INDEX documents_org_fecha_idx ON documents (org_id, fecha_emision DESC, clave_acceso DESC);
CREATE INDEX documents_org_emisor_idx ON documents (org_id, emisor_ruc);

GRANT SELECT, INSERT, UPDATE, DELETE ON documents TO sri_app;

ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE documents FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON documents TO sri_app
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
DO $$
BEGIN
  -- The migrating (owning) role serves system lookups; FORCE would otherwise hide every row from it.
  EXECUTE format('CREATE POLICY system_access ON documents TO %I USING (true) WITH CHECK (true)', current_user);
END
$$;

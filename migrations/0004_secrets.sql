-- 0004_secrets: an organisation's secrets (PUT /api/secrets/{name}) and the audit of their use (docs/security.md).
--
-- secrets.value_enc: the value sealed with AES-256-GCM under SECRETS_KEYS (src/shared/sealed.ts): the text
-- `sri-enc:v1:<kid>:<iv>:<tag>:<ciphertext>`, bound to the organisation and the name, so a row copied to another
-- organisation or name does not decrypt. The CHECK keeps clear text out of the column whatever the code does.
-- secrets.key_id: the kid value_enc names, so a rotation can see which rows still use an old key.
-- secret_audit: who created, replaced or deleted a secret and which job was sent which secret names — never a
-- value. Append-only for the API's role: sri_app may read and insert, not change or delete.
-- Both tables are organisation data: RLS as in 0001 (policy for sri_app by app.org_id, all rows for the owner).

CREATE TABLE secrets (
  org_id      text NOT NULL REFERENCES organisations (id),
  name        text NOT NULL CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
  value_enc   text NOT NULL CHECK (value_enc LIKE 'sri-enc:v1:%'),
  key_id      text NOT NULL,
  created_by  text REFERENCES users (id),
  updated_by  text REFERENCES users (id),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, name)
);
CREATE INDEX secrets_key_idx ON secrets (key_id);

CREATE TABLE secret_audit (
  id           text PRIMARY KEY,
  org_id       text NOT NULL REFERENCES organisations (id),
  secret_name  text NOT NULL,
  action       text NOT NULL CHECK (action IN ('created', 'updated', 'deleted', 'sent_to_job')),
  job_id       text,
  user_id      text,
  at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX secret_audit_org_idx ON secret_audit (org_id, at DESC, id);
CREATE INDEX secret_audit_job_idx ON secret_audit (job_id) WHERE job_id IS NOT NULL;

GRANT SELECT, INSERT, UPDATE, DELETE ON secrets TO sri_app;
GRANT SELECT, INSERT ON secret_audit TO sri_app;

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['secrets', 'secret_audit'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format($p$CREATE POLICY org_isolation ON %I TO sri_app
      USING (org_id = current_setting('app.org_id', true))
      WITH CHECK (org_id = current_setting('app.org_id', true))$p$, t);
    EXECUTE format('CREATE POLICY system_access ON %I TO %I USING (true) WITH CHECK (true)', t, current_user);
  END LOOP;
END
$$;

-- 0001_schema: the control plane's tables, the role the API runs as, and row-level security.
--
-- Every table holding organisation data has ENABLE + FORCE ROW LEVEL SECURITY and a policy for the role `sri_app`
-- that admits only rows of the organisation set per transaction with set_config('app.org_id', …, true).
-- FORCE matters on a PostgreSQL server: without it the owning role is exempt from its own policies.
-- The API switches to `sri_app` (SET LOCAL ROLE) for every request; only the few lookups that precede knowing the
-- organisation (register, login, the results reconciler) run as the migrating role, which gets an explicit
-- all-rows policy below (a superuser, like PGlite's default user, bypasses RLS anyway).

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sri_app') THEN
    CREATE ROLE sri_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
  -- A non-superuser may SET ROLE only to roles it is a member of.
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user AND rolsuper) THEN
    EXECUTE format('GRANT sri_app TO %I', current_user);
  END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO sri_app;

CREATE TABLE organisations (
  id          text PRIMARY KEY,
  name        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  id             text PRIMARY KEY,
  org_id         text NOT NULL REFERENCES organisations (id),
  email          text NOT NULL,
  name           text NOT NULL,
  password_hash  text NOT NULL, -- argon2id, PHC string
  created_at     timestamptz NOT NULL DEFAULT now()
);
-- E-mail is the login name, so it is unique across organisations.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_org_idx ON users (org_id);

-- The provider catalogue is global (no organisation data): readable by everyone, written only by migrations.
CREATE TABLE providers (
  id             text PRIMARY KEY,
  name           text NOT NULL UNIQUE, -- lower-case, part of the Redis session key
  display_name   text NOT NULL,
  allowed_hosts  jsonb NOT NULL         -- host names without port; "*.x.com" matches subdomains of x.com
);

INSERT INTO providers (id, name, display_name, allowed_hosts) VALUES
  ('demo', 'demo', 'Demo supplier portal', '["127.0.0.1", "localhost"]'),
  ('sri', 'sri', 'SRI en línea (Ecuador tax authority)', '["srienlinea.sri.gob.ec", "*.sri.gob.ec"]'),
  ('cargill', 'cargill', 'Cargill supplier portal', '["*.cargill.com"]')
ON CONFLICT (id) DO NOTHING;

CREATE TABLE provider_connections (
  org_id        text NOT NULL REFERENCES organisations (id),
  user_id       text NOT NULL REFERENCES users (id),
  provider_id   text NOT NULL REFERENCES providers (id),
  connected_at  timestamptz NOT NULL,
  expires_at    timestamptz NOT NULL,
  PRIMARY KEY (org_id, user_id, provider_id)
);

CREATE TABLE flows (
  id           text PRIMARY KEY,
  org_id       text NOT NULL REFERENCES organisations (id),
  provider_id  text NOT NULL REFERENCES providers (id),
  version      text NOT NULL,
  name         text NOT NULL,
  description  text,
  steps        jsonb NOT NULL,
  script       text NOT NULL,
  script_hash  text NOT NULL,
  signature    text NOT NULL,
  script_key   text NOT NULL,
  active       boolean NOT NULL DEFAULT false,
  created_by   text REFERENCES users (id),
  created_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, provider_id, version)
);
-- One active flow per provider per organisation.
CREATE UNIQUE INDEX flows_one_active_idx ON flows (org_id, provider_id) WHERE active;

CREATE TABLE jobs (
  id               text PRIMARY KEY,
  org_id           text NOT NULL REFERENCES organisations (id),
  user_id          text NOT NULL REFERENCES users (id),
  provider_id      text NOT NULL REFERENCES providers (id),
  flow_id          text NOT NULL REFERENCES flows (id),
  flow_version     text NOT NULL,
  status           text NOT NULL,
  attempt          integer NOT NULL DEFAULT 1,
  idempotency_key  text,
  request_hash     text,  -- SHA-256 of the request body, to tell a replay from a conflicting reuse of the key
  metadata         jsonb,
  trace_id         text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  started_at       timestamptz,
  finished_at      timestamptz,
  duration_ms      integer,
  worker_id        text,
  error_code       text,
  error_message    text,
  result           jsonb, -- parsed-data.json, when the job produced one (capped)
  files            jsonb, -- the result message's files: s3:// URIs of log, screenshots, download, parsed data
  UNIQUE (org_id, idempotency_key)
);
CREATE INDEX jobs_org_created_idx ON jobs (org_id, created_at DESC);
CREATE INDEX jobs_unfinished_idx ON jobs (created_at) WHERE status NOT IN ('done', 'failed', 'cancelled', 'dead');

GRANT SELECT ON providers TO sri_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON organisations, users, provider_connections, flows, jobs TO sri_app;

-- Row-level security on every table holding organisation data.
ALTER TABLE organisations ENABLE ROW LEVEL SECURITY;
ALTER TABLE organisations FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON organisations TO sri_app
  USING (id = current_setting('app.org_id', true))
  WITH CHECK (id = current_setting('app.org_id', true));

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['users', 'provider_connections', 'flows', 'jobs'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format($p$CREATE POLICY org_isolation ON %I TO sri_app
      USING (org_id = current_setting('app.org_id', true))
      WITH CHECK (org_id = current_setting('app.org_id', true))$p$, t);
  END LOOP;
  -- The migrating (owning) role serves the system lookups; FORCE would otherwise hide every row from it.
  FOREACH t IN ARRAY ARRAY['organisations', 'users', 'provider_connections', 'flows', 'jobs'] LOOP
    EXECUTE format('CREATE POLICY system_access ON %I TO %I USING (true) WITH CHECK (true)', t, current_user);
  END LOOP;
END
$$;

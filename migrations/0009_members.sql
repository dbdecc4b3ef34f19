-- 0009_members: an organisation's members managed by its admins (GET/POST /api/members, PATCH/DELETE
-- /api/members/{id}, POST /api/invitations/accept; docs/security.md "Members").
--
-- users.removed_at: a removed member's row stays (their jobs, flows and audit entries name them) but counts for
-- nothing: login, the per-request user check and every member list skip it, and their e-mail is free again (the
-- unique index now covers only current users).
-- users.password_hash NULL: a member invited by link who has not chosen a password yet; a login with their e-mail
-- costs and answers what an unknown e-mail does.
-- member_invitations: one row per invitation link; only the SHA-256 of its token is kept, so the table does not
-- hold a usable link. Accepting sets accepted_at (once); an invitation whose member is removed is deleted.

ALTER TABLE users ADD COLUMN removed_at timestamptz;
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;
DROP INDEX users_email_key;
CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE removed_at IS NULL;

CREATE TABLE member_invitations (
  id           text PRIMARY KEY,
  org_id       text NOT NULL REFERENCES organisations (id),
  user_id      text NOT NULL REFERENCES users (id),
  token_sha256 text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
  created_by   text REFERENCES users (id),
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  accepted_at  timestamptz
);
CREATE INDEX member_invitations_user_idx ON member_invitations (user_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON member_invitations TO sri_app;

ALTER TABLE member_invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE member_invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON member_invitations TO sri_app
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
DO $$
BEGIN
  EXECUTE format('CREATE POLICY system_access ON member_invitations TO %I USING (true) WITH CHECK (true)', current_user);
END
$$;

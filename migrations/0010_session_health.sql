-- 0010_session_health: session health and re-login (issue 13; docs/sessions.md).
--
-- providers.session_check: how a worker tells a logged-in page from a logged-out one (src/shared/provider-catalogue.ts
-- SessionCheck), NULL = no check. providers.login_steps: the provider's login flow as steps (compiled, hashed and
-- signed by the API when it publishes the catalogue to Redis), NULL = none. Both are global catalogue data, written
-- by the migrating role like the rest of the table.
-- provider_connections.expired_at: set by the results listener when a job of the connection ends SESSION_EXPIRED
-- (the portal logged it out and no login flow could renew it); cleared by connecting again or by a job of the
-- connection that ends done.
-- webhook_deliveries: a job attempt can now announce two events (job.failed and session.expired), so a webhook
-- gets one delivery per (job, attempt, event) instead of per (job, attempt).

ALTER TABLE providers ADD COLUMN session_check jsonb, ADD COLUMN login_steps jsonb;
ALTER TABLE provider_connections ADD COLUMN expired_at timestamptz;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_webhook_id_job_id_job_attempt_key;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_once_per_event UNIQUE (webhook_id, job_id, job_attempt, event);

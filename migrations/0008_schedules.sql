-- 0008_schedules: runs that start by themselves (docs/schedules.md).
--
-- schedules: one cron pattern (seconds optional) in an IANA time zone, run with the session of the user who created
-- it (user_id), for a pinned flow (flow_id) or for the provider's active flow at each due time (flow_id NULL).
-- The scheduler of every API process scans the enabled ones; these columns make "one run per due time" hold across
-- any number of processes:
--   next_due_at        the earliest due time not handled yet (NULL: the pattern has no future time);
--   pending_due_at     a due time claimed for a run whose job is being submitted, with pending_claimed_at: a claim
--                      older than the scheduler's takeover delay (its process died) is submitted again by another one,
--                      safely, since the run's idempotency key is `schedule:<id>:<due time>`;
--   revision           raised by every change of the row: claims and edits are compare-and-set on it, so of two
--                      processes that read the same due time only one claims it.
-- jobs.schedule_id / jobs.due_at: the schedule and due time a job was made for; the unique index is the database's
-- own guarantee that no due time of a schedule ever gets two jobs. The jobs keep both after their schedule is deleted.
-- schedules is organisation data: RLS as in 0001 (policy for sri_app by app.org_id, all rows for the owner).

CREATE TABLE schedules (
  id                  text PRIMARY KEY,
  org_id              text NOT NULL REFERENCES organisations (id),
  user_id             text NOT NULL REFERENCES users (id),
  provider_id         text NOT NULL REFERENCES providers (id),
  flow_id             text REFERENCES flows (id),
  cron                text NOT NULL,
  timezone            text NOT NULL,
  metadata            jsonb,
  enabled             boolean NOT NULL,
  missed_run_policy   text NOT NULL CHECK (missed_run_policy IN ('skip', 'runOnce')),
  next_due_at         timestamptz,
  pending_due_at      timestamptz,
  pending_claimed_at  timestamptz,
  revision            integer NOT NULL DEFAULT 0,
  last_job_id         text,
  last_due_at         timestamptz,
  last_error_code     text,
  last_error_message  text,
  last_error_at       timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_org_idx ON schedules (org_id, created_at);
CREATE INDEX schedules_due_idx ON schedules (next_due_at) WHERE enabled;
-- The scheduler's other question each tick: claims left unfinished (rare, so the index is small).
CREATE INDEX schedules_claimed_idx ON schedules (pending_claimed_at) WHERE pending_due_at IS NOT NULL;

ALTER TABLE jobs ADD COLUMN schedule_id text;
ALTER TABLE jobs ADD COLUMN due_at timestamptz;
CREATE UNIQUE INDEX jobs_schedule_due_key ON jobs (schedule_id, due_at) WHERE schedule_id IS NOT NULL;

GRANT SELECT, INSERT, UPDATE, DELETE ON schedules TO sri_app;

ALTER TABLE schedules ENABLE ROW LEVEL SECURITY;
ALTER TABLE schedules FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON schedules TO sri_app
  USING (org_id = current_setting('app.org_id', true))
  WITH CHECK (org_id = current_setting('app.org_id', true));
DO $$
BEGIN
  -- The migrating (owning) role serves the scheduler's scan across organisations; FORCE would otherwise hide every row.
  EXECUTE format('CREATE POLICY system_access ON schedules TO %I USING (true) WITH CHECK (true)', current_user);
END
$$;

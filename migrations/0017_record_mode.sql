-- 0017_record_mode: recordings of a job's page (docs/scripts.md "Recordings"). flows.record is the flow version's
-- setting (POST /api/flows `record`), jobs.record a run's override (POST /api/run `record`); NULL = not given. The
-- job message carries the one that applies (the run's, else the flow's; none when neither), also on a retry.
-- Both tables already have RLS (0001); new columns need no policy of their own.

ALTER TABLE flows ADD COLUMN record text CHECK (record IN ('none', 'onFailure', 'always'));
ALTER TABLE jobs ADD COLUMN record text CHECK (record IN ('none', 'onFailure', 'always'));

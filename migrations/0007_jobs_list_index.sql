-- 0007_jobs_list_index: the jobs list (GET /api/jobs) pages an organisation's jobs newest first, ties broken by id.
--
-- 0001's jobs_org_created_idx (org_id, created_at DESC) has the order but not the tie-break: PostgreSQL served a
-- page from it through an incremental sort. With id in the index an early page is an index-only scan with no sort;
-- the old index is a prefix of the new one and goes. Filters (status, provider, a range of days) are applied during
-- the same scan. Measured with 10,000 jobs in one organisation (docs/benchmarks.md "Jobs list"): every page well
-- under the 200 ms target with either index; the last pages, far into the OFFSET, are a full sort either way.

CREATE INDEX jobs_org_created_id_idx ON jobs (org_id, created_at DESC, id DESC);
DROP INDEX IF EXISTS jobs_org_created_idx;

-- 0007_jobs_list_index: the jobs list (GET /api/jobs) pages an organisation's jobs newest first, ties broken by id.
--
-- 0001's jobs_org_created_idx (org_id, created_at DESC) gave the order but not the tie-break, so every page sorted
-- all of the organisation's matching jobs to hand out 20 of them. With id in the index the page is read in index
-- order and the sort is gone; the old index is a prefix of the new one and goes.
-- Filters by provider (one of a few) or status are served by the same scan: they keep most rows of an organisation
-- with few providers, and a page stops after its rows. Figures: docs/benchmarks.md "Jobs list".

CREATE INDEX jobs_org_created_id_idx ON jobs (org_id, created_at DESC, id DESC);
DROP INDEX IF EXISTS jobs_org_created_idx;

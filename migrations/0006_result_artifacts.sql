-- 0006_result_artifacts: every evidence file of a job's result with its size and hash (ARCHITECTURE.md "Result
-- message" `artifacts`: [{ name, kind, uri, bytes, sha256, contentType }]), as GET /api/jobs/{id} shows it.
-- `files` stays as it is (the URIs alone, for results of workers that send no artifacts).
-- jobs already has RLS (0001); a new column needs no policy of its own. Cleared with `files` when a job is requeued.

ALTER TABLE jobs ADD COLUMN artifacts jsonb;

-- 0018_job_blocker: what stood between a job and its page (docs/scripts.md "Blockers"), as the worker's result names
-- it — {kind, url, evidence}: a login wall, a CAPTCHA, a rate limit, a maintenance page or an access denial — for the
-- job's last recorded attempt; null when it met none, and for results of workers that do not classify blockers.

ALTER TABLE jobs ADD COLUMN blocker jsonb;

-- 0016_webhook_handoff_occurrence: a job attempt may wait for a person more than once (two hand-offs in one run:
-- a CAPTCHA on the login page, then a one-time code), and each wait is announced with its own job.waiting_for_user
-- webhook. webhook_deliveries.occurrence tells the waits of one attempt apart (the hand-off's expiresAt, epoch ms;
-- '' for every other event), so a webhook gets one delivery per (job, attempt, event, occurrence): a second hand-off
-- is delivered, the same announcement read twice is not.

ALTER TABLE webhook_deliveries ADD COLUMN occurrence text NOT NULL DEFAULT '';
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_once_per_event;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_once_per_occurrence UNIQUE (webhook_id, job_id, job_attempt, event, occurrence);

-- 0002_roles_and_reliability: organisation admins, and what a job needs to be rebuilt for a retry.
--
-- users.role: the user who registers an organisation is its admin; everyone added later is a member. Admin-only
-- endpoints (dead letters, quotas) check it. Organisations created before this migration get their first user
-- (oldest, ties broken by id) as admin, so none is left without one.
-- flows.max_attempts: the flow's default for how many times a job may run (NULL = the queue's default).
-- jobs.priority / jobs.max_attempts: what the run asked for, kept so POST /api/jobs/{id}/retry rebuilds the same
-- message. Statuses are free text: queued, running, retrying (not final), done, failed, cancelled, dead (final).

ALTER TABLE users ADD COLUMN role text NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member'));

UPDATE users SET role = 'admin'
WHERE id IN (SELECT DISTINCT ON (org_id) id FROM users ORDER BY org_id, created_at, id);

ALTER TABLE flows ADD COLUMN max_attempts integer CHECK (max_attempts BETWEEN 1 AND 10);

ALTER TABLE jobs ADD COLUMN priority text NOT NULL DEFAULT 'normal' CHECK (priority IN ('normal', 'high'));
ALTER TABLE jobs ADD COLUMN max_attempts integer CHECK (max_attempts BETWEEN 1 AND 10);

-- 0013_ops_tasks: the audit of the operations worker's tasks (docs/operations.md). One row per task the platform
-- operator asked for (system.update, system.check): who asked (the operator token's fingerprint, never the token),
-- when, what it was asked to do, and — from the task's result message (sri:ops:results) — every step with what ran,
-- its exit code, duration and output tail, and the outcome. The table holds no organisation's data: no RLS, and the
-- application role sri_app gets no grant; the API reads and writes it as its owning role, behind OPERATOR_TOKEN.
CREATE TABLE IF NOT EXISTS ops_tasks (
  id uuid PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('system.update', 'system.check')),
  params jsonb NOT NULL DEFAULT '{}'::jsonb,
  status text NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'interrupted')),
  requested_by jsonb NOT NULL,
  requested_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz,
  worker_id text,
  steps jsonb NOT NULL DEFAULT '[]'::jsonb,
  details jsonb,
  error jsonb
);
CREATE INDEX IF NOT EXISTS ops_tasks_requested_at ON ops_tasks (requested_at DESC, id DESC);

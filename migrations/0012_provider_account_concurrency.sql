-- 0012_provider_account_concurrency: how many jobs of one portal account (organisation, user, provider: one
-- session) may run at once (docs/queue.md "One run at a time per portal account"). 1, the default, serialises them:
-- two runs on one portal account at once log each other out. The control plane puts it in every job message of the
-- provider; the queue's take script holds the account's further jobs until a lease of it ends.
ALTER TABLE providers ADD COLUMN IF NOT EXISTS max_concurrent_per_account integer NOT NULL DEFAULT 1
  CHECK (max_concurrent_per_account BETWEEN 1 AND 100);

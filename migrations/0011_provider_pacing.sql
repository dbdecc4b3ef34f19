-- 0010_provider_pacing: a provider's pacing (docs/providers.md): the least spacing between its jobs' starts and its
-- jitter, a requests-per-minute ceiling across organisations, maintenance windows on the portal's clock, and its
-- circuit breaker's settings. JSON checked by the API and the catalogue's publisher (src/shared/provider-pacing.ts);
-- '{}' paces nothing, so every provider keeps today's behaviour until an operator sets it.
ALTER TABLE providers ADD COLUMN IF NOT EXISTS pacing jsonb NOT NULL DEFAULT '{}'::jsonb;

--[[
  recordOutcome: what a job of this provider says about the portal, for its circuit breaker (docs/providers.md).
  One atomic step on Redis's clock:
  - 'failure' (an infrastructure failure: the portal unreachable, a 5xx page, a blocker page): failures + 1; a
    half-open breaker opens again at once, a closed one opens when failures reach the threshold; open means no job
    starts until now + coolDownMs;
  - 'success' (the portal answered: the job ended done, or failed for a reason of its own): failures = 0 and the
    breaker closes;
  - 'neutral' (the job ended for a reason that says nothing of the portal: cancelled, shut down, S3 trouble): nothing
    changes, except that a probe gives its turn to the next job.

  KEYS[1]  sri:provider-gate:{name}   hash
  ARGV[1]  job id
  ARGV[2]  'failure' | 'success' | 'neutral'
  ARGV[3]  failureThreshold
  ARGV[4]  coolDownMs

  Returns {state before, state after, failures, openUntil}.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key, jobId, kind = KEYS[1], ARGV[1], ARGV[2]
local g = redis.call('HMGET', KEYS[1], 'state', 'failures', 'openUntil', 'probeJob')
local before = g[1] or 'closed'
local failures = tonumber(g[2]) or 0
local openUntil = tonumber(g[3]) or 0
local after = before
if kind == 'failure' then
  failures = failures + 1
  if before == 'half_open' or (before == 'closed' and failures >= tonumber(ARGV[3])) then
    after = 'open'
    openUntil = now + tonumber(ARGV[4])
    redis.call('HSET', key, 'state', after, 'openUntil', openUntil, 'openedAt', now, 'changedAt', now)
    redis.call('HDEL', key, 'probeJob', 'probeUntil')
  end
  redis.call('HSET', key, 'failures', failures)
elseif kind == 'success' then
  failures = 0
  if before ~= 'closed' then
    after = 'closed'
    redis.call('HSET', key, 'state', after, 'changedAt', now)
    redis.call('HDEL', key, 'probeJob', 'probeUntil', 'openUntil')
    openUntil = 0
  end
  redis.call('HSET', key, 'failures', 0)
elseif g[4] == jobId then
  redis.call('HDEL', key, 'probeJob', 'probeUntil')
end
return { before, after, failures, openUntil }

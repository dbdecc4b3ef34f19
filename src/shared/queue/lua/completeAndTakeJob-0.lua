--[[
  completeAndTakeJob: a worker's slot finishing one job and taking its next in one round trip (the worker's
  normal path; BullMQ's moveToFinished does the same). Exactly completeJob followed by takeJob, atomically: the
  completion's guarantees (first outcome wins, late results counted) and the take's (fair round-robin, quotas,
  priority, leases, idempotent per take token) are those of the two scripts.

  KEYS     none
  ARGV[1..7]   completeJob's arguments (token, status, result JSON, result TTL, worker id for counters, duration, finishedAt)
  ARGV[8]      next take token
  ARGV[9]      worker id the next job is leased to
  ARGV[10..12] takeJob's lease ms, largest decoded message, refill batch

  Returns {outcome ('recorded' or 'late'), next} where next is takeJob's reply (false when nothing is takeable).
]]
--@include helpers.lua
--@include complete.lua
--@include take.lua

local outcome = complete(ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]) or 0, ARGV[7])
return { outcome, take(ARGV[8], ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])) }

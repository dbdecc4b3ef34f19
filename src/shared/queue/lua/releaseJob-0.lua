--[[
  releaseJob: hands a leased job back untouched (worker shutdown): to the FRONT of its organisation's queue,
  same message, same attempt, status 'queued'.

  Guarantees (one atomic step): only a live lease is released; the message re-enters the queue in the same step as
  the lease ends, so it is never both leased and queued, nor neither.

  KEYS     none (K.lease, K.orgReadyHigh/Normal, K.jobStatus, K.queueLeases, …)
  ARGV[1]  take token

  Returns 1 when released, 0 when the lease was already gone.
]]
--@include helpers.lua

local token = ARGV[1]
local lease = redis.call('HMGET', K.lease(token), 'orgId', 'jobId')
local orgId, jobId = lease[1], lease[2]
if not orgId then return 0 end
lease_to_front(token, orgId, lease_raw(token))
if jobId ~= '' and not is_terminal(redis.call('GET', K.jobStatus(jobId))) then
  redis.call('SET', K.jobStatus(jobId), 'queued')
end
end_lease(token, orgId, jobId)
return 1

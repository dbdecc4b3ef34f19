--[[
  requeueJob: runs a failed or dead job again: status 'queued', the message pushed like a producer's, attempt
  bookkeeping and cancel marks cleared.

  Guarantees (one atomic step): only a job whose status is failed or dead and that holds no lease is queued
  again, so a job can never be queued twice by two concurrent retry requests.

  KEYS[1]  sri:job:{jobId}:status          string
  KEYS[2]  sri:queue:job-leases            hash
  KEYS[3]  sri:org:{orgId}:jobs            list, the producer list
  KEYS[4]  sri:queue:attempts              hash
  KEYS[5]  sri:job:{jobId}:cancel          string
  KEYS[6]  sri:queue:cancelled             set
  KEYS[7]  sri:queue:ring                  list
  KEYS[8]  sri:queue:ring:members          set
  ARGV[1]  organisation id
  ARGV[2]  job id
  ARGV[3]  job message JSON (its attempt field already the next attempt)

  Returns {Ok}, or {NotRetryable, status ('' when none)}.
]]
--@include helpers.lua

local orgId, jobId = ARGV[1], ARGV[2]
local status = redis.call('GET', KEYS[1])
if (status ~= 'failed' and status ~= 'dead') or redis.call('HEXISTS', KEYS[2], jobId) == 1 then
  return { CODE.NotRetryable, status or '' }
end
redis.call('HDEL', KEYS[4], jobId)
redis.call('DEL', KEYS[5])
redis.call('SREM', KEYS[6], jobId)
redis.call('LPUSH', KEYS[3], ARGV[3])
redis.call('SET', KEYS[1], 'queued')
register_org(KEYS[7], KEYS[8], orgId)
return { CODE.Ok }

--[[
  releaseJob: hands a leased job back untouched (worker shutdown): to the FRONT of its organisation's queue,
  same message, same attempt, status 'queued'.

  Guarantees (one atomic step): only a live lease is released; the message re-enters the queue in the same step as
  the lease ends, so it is never both leased and queued, nor neither.

  KEYS[1]   sri:lease:{token}               hash, the lease record
  KEYS[2]   sri:lease:{token}:message       list, the leased message
  KEYS[3]   sri:queue:leases                sorted set
  KEYS[4]   sri:queue:leased-by-org         hash
  KEYS[5]   sri:queue:job-leases            hash
  KEYS[6]   sri:job:{jobId}:status          string
  KEYS[7]   sri:org:{orgId}:ready:high      list
  KEYS[8]   sri:org:{orgId}:ready:normal    list
  KEYS[9]   sri:queue:ring                  list
  KEYS[10]  sri:queue:ring:members          set
  ARGV[1]   take token
  ARGV[2]   organisation id of the lease
  ARGV[3]   job id of the lease ('' when none)

  Returns {Ok} when released, {Late} when the lease was already gone, {Stale} when the lease is not the one
  described by ARGV[2..3] (nothing is touched).
]]
--@include helpers.lua

local L = { lease = KEYS[1], message = KEYS[2], leases = KEYS[3], byOrg = KEYS[4], jobLeases = KEYS[5] }
local token, orgId, jobId = ARGV[1], ARGV[2], ARGV[3]
local lease = redis.call('HMGET', L.lease, 'orgId', 'jobId')
if not lease[1] then return { CODE.Late } end
if lease[1] ~= orgId or lease[2] ~= jobId then return { CODE.Stale } end
message_to_front(L.message, KEYS[7], KEYS[8], lease_raw(L.lease, L.message))
register_org(KEYS[9], KEYS[10], orgId)
if jobId ~= '' and not is_terminal(redis.call('GET', KEYS[6])) then
  redis.call('SET', KEYS[6], 'queued')
end
end_lease(L, token, orgId, jobId)
return { CODE.Ok }

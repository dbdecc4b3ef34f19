--[[
  deferJob: puts a leased job back to wait until a given time WITHOUT counting an attempt or failing it — its
  provider's gate said "not yet" (pacing, requests-per-minute ceiling, maintenance window, open circuit breaker;
  docs/providers.md). The job has not started: no browser opened, nothing of it ran.

  Guarantees (one atomic step): only the take token holding the job's lease can defer it, and only while the job
  has no terminal status (else Late, counted, and the lease ends). The lease ends in the same step as the message
  (kept byte for byte in the lease's message list: same attempt, no change) is parked in sri:queue:deferred, so the
  job is never both leased and waiting, nor neither; the worker's slot and the organisation's maxConcurrent count
  are freed with the lease. Its status reads 'queued' (it waits, as in a ready list). A lease whose attempt was
  raised by a recovery keeps that attempt (sri:queue:attempts), which the take would otherwise not see again.
  promoteDeferred moves the message back to the FRONT of its organisation's queue when the time comes.

  KEYS[1]   sri:lease:{token}               hash, the lease record
  KEYS[2]   sri:lease:{token}:message       list, the leased message; stays there until promoted
  KEYS[3]   sri:queue:leases                sorted set
  KEYS[4]   sri:queue:leased-by-org         hash
  KEYS[5]   sri:queue:job-leases            hash, job id → take token
  KEYS[6]   sri:queue:late-results          string, counter
  KEYS[7]   sri:job:{jobId}:status          string
  KEYS[8]   sri:queue:deferred              sorted set, take token → due time
  KEYS[9]   sri:queue:deferred:jobs         hash, take token → {"o":orgId,"j":jobId,"w":why}
  KEYS[10]  sri:queue:attempts              hash, job id → attempt of its next take
  ARGV[1]   take token
  ARGV[2]   job id (the lease's; KEYS[7] is its status)
  ARGV[3]   due time, epoch ms
  ARGV[4]   why, a short word for operators (spacing, rate, maintenance, breaker)
  ARGV[5]   the attempt to keep when the lease was recovered ('' otherwise)

  Returns {Ok} (deferred) or {Late}.
]]
--@include helpers.lua

local L = { lease = KEYS[1], message = KEYS[2], leases = KEYS[3], byOrg = KEYS[4], jobLeases = KEYS[5] }
local token, jobId = ARGV[1], ARGV[2]
local lease = redis.call('HMGET', L.lease, 'orgId', 'jobId')
local orgId, leasedJob = lease[1], lease[2]
if not orgId or leasedJob ~= jobId or jobId == '' or redis.call('HGET', L.jobLeases, jobId) ~= token
    or is_terminal(redis.call('GET', KEYS[7])) or redis.call('LLEN', L.message) == 0 then
  redis.call('INCR', KEYS[6])
  if orgId then end_lease(L, token, orgId, leasedJob) end
  return { CODE.Late }
end
redis.call('ZADD', KEYS[8], tonumber(ARGV[3]), token)
redis.call('HSET', KEYS[9], token, cjson.encode({ o = orgId, j = jobId, w = ARGV[4] }))
if ARGV[5] ~= '' then redis.call('HSET', KEYS[10], jobId, ARGV[5]) end
redis.call('SET', KEYS[7], 'queued')
end_lease(L, token, orgId, jobId, { keepMessage = true })
return { CODE.Ok }

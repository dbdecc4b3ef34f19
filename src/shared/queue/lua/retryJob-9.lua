--[[
  retryJob: parks a job that failed transiently until its retry is due.

  Guarantees (one atomic step): only the take token holding the job's lease can schedule its retry, once, and
  only while the job has no terminal status (else Late, counted). The lease ends in the same step as the next
  attempt's message is parked, so the job is never both leased and waiting, nor neither. The message waits in the
  lease's message list (the lease record itself is gone), where promoteRetry moves it back to the front with LMOVE.

  KEYS[1]  sri:lease:{token}               hash, the lease record
  KEYS[2]  sri:lease:{token}:message       list, the leased message; then the next attempt's, until promoted
  KEYS[3]  sri:queue:leases                sorted set
  KEYS[4]  sri:queue:leased-by-org         hash
  KEYS[5]  sri:queue:job-leases            hash, job id → take token
  KEYS[6]  sri:queue:late-results          string, counter
  KEYS[7]  sri:job:{jobId}:status          string
  KEYS[8]  sri:queue:delayed               sorted set, take token → due time
  KEYS[9]  sri:queue:delayed:jobs          hash, take token → {"o":orgId,"j":jobId,"e":last error}
  ARGV[1]  take token
  ARGV[2]  job id (the lease's; KEYS[7] is its status)
  ARGV[3]  next attempt's raw message
  ARGV[4]  due time, epoch ms
  ARGV[5]  error JSON {code, message} of the failed attempt (kept with the waiting job, for operators)
  ARGV[6]  optional: the attempt's result message (status 'retrying'), published when recorded — sent for an attempt
           that met a blocker, so the control plane records it and announces job.blocked; '' or absent: nothing
  ARGV[7]  the organisation's result channel (sri:org:{orgId}:done), with ARGV[6]

  Returns {Ok} (recorded) or {Late}. A Late retry publishes nothing.
]]
--@include helpers.lua

local L = { lease = KEYS[1], message = KEYS[2], leases = KEYS[3], byOrg = KEYS[4], jobLeases = KEYS[5] }
local token, jobId = ARGV[1], ARGV[2]
local lease = redis.call('HMGET', L.lease, 'orgId', 'jobId')
local orgId, leasedJob = lease[1], lease[2]
if not orgId or leasedJob ~= jobId or jobId == '' or redis.call('HGET', L.jobLeases, jobId) ~= token
    or is_terminal(redis.call('GET', KEYS[7])) then
  redis.call('INCR', KEYS[6])
  if orgId then end_lease(L, token, orgId, leasedJob) end
  return { CODE.Late }
end
redis.call('DEL', L.message)
redis.call('RPUSH', L.message, ARGV[3])
redis.call('ZADD', KEYS[8], tonumber(ARGV[4]), token)
redis.call('HSET', KEYS[9], token, cjson.encode({ o = orgId, j = jobId, e = ARGV[5] }))
redis.call('SET', KEYS[7], 'retrying')
end_lease(L, token, orgId, jobId, { keepMessage = true })
if ARGV[6] and ARGV[6] ~= '' then redis.call('PUBLISH', ARGV[7], ARGV[6]) end
return { CODE.Ok }

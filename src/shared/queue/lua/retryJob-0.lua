--[[
  retryJob: parks a job that failed transiently until its retry is due.

  Guarantees (one atomic step): only the take token holding the job's lease can schedule its retry, once, and
  only while the job has no terminal status (else 'late', counted). The lease ends in the same step as the next
  attempt's message enters the delayed set, so the job is never both leased and waiting, nor neither.

  KEYS     none (K.lease, K.jobLease, K.jobStatus, K.queueDelayed, K.queueDelayedJobs, K.queueLateResults)
  ARGV[1]  take token
  ARGV[2]  next attempt's raw message
  ARGV[3]  due time, epoch ms
  ARGV[4]  error JSON {code, message} of the failed attempt (kept with the waiting message, for operators)

  Returns 'recorded' or 'late'.
]]
--@include helpers.lua

local token = ARGV[1]
local lease = redis.call('HMGET', K.lease(token), 'orgId', 'jobId')
local orgId, jobId = lease[1], lease[2]
if not orgId or not jobId or jobId == '' or redis.call('GET', K.jobLease(jobId)) ~= token
    or is_terminal(redis.call('GET', K.jobStatus(jobId))) then
  redis.call('INCR', K.queueLateResults)
  if orgId then end_lease(token, orgId, jobId) end
  return 'late'
end
redis.call('ZADD', K.queueDelayed, tonumber(ARGV[3]), token)
redis.call('HSET', K.queueDelayedJobs, token, cjson.encode({ o = orgId, j = jobId, r = ARGV[2], e = ARGV[4] }))
redis.call('SET', K.jobStatus(jobId), 'retrying')
end_lease(token, orgId, jobId)
return 'recorded'

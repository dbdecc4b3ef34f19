--[[
  requeueJob: runs a failed or dead job again: status 'queued', the message pushed like a
  producer's, attempt bookkeeping and cancel flag cleared.

  Guarantees (one atomic step): only a job whose status is failed or dead and that holds no lease is
  queued again, so a job can never be queued twice by two concurrent retry requests.

  KEYS     none (K.jobStatus, K.jobLease, K.orgJobs, K.jobAttempt, K.jobCancel)
  ARGV[1]  organisation id
  ARGV[2]  job id
  ARGV[3]  job message JSON (its attempt field already the next attempt)

  Returns 'OK', or the status that prevented it ('' when none).
]]
--@include helpers.lua

local orgId, jobId = ARGV[1], ARGV[2]
local status = redis.call('GET', K.jobStatus(jobId))
if (status ~= 'failed' and status ~= 'dead') or redis.call('EXISTS', K.jobLease(jobId)) == 1 then
  return status or ''
end
redis.call('DEL', K.jobAttempt(jobId), K.jobCancel(jobId))
redis.call('LPUSH', K.orgJobs(orgId), ARGV[3])
redis.call('SET', K.jobStatus(jobId), 'queued')
register_org(orgId)
return 'OK'

--[[
  cancelJob: cancels a job wherever it is.

  Guarantees (one atomic step):
  - a job with a terminal status is left alone ('final');
  - a leased (running) job of this organisation gets the cancel flag and a message on the control channel
    sri:control, which its worker follows by closing the job's browser context ('cancelling'); the worker then
    records 'cancelled' through completeJob; if the worker died, recoverExpired finishes it as cancelled;
  - a queued or retrying job becomes 'cancelled' at once, its result is stored and published, and the flag makes
    takeJob / promoteDue drop its message, so it never runs ('cancelled');
  - anything else is 'unknown' (no status, or a lease of another organisation).

  KEYS     none (K.jobStatus, K.jobLease, K.lease, K.jobCancel, K.queueControl, K.orgDone, K.jobResult)
  ARGV[1]  organisation id
  ARGV[2]  job id
  ARGV[3]  finishedAt (ISO time)
  ARGV[4]  result TTL, seconds (the cancel flag lives as long)

  Returns 'final', 'cancelling', 'cancelled' or 'unknown'.
]]
--@include helpers.lua

local orgId, jobId, ttl = ARGV[1], ARGV[2], tonumber(ARGV[4])
local status = redis.call('GET', K.jobStatus(jobId))
if is_terminal(status) then return 'final' end
local token = redis.call('GET', K.jobLease(jobId))
if token then
  local leaseOrg = redis.call('HGET', K.lease(token), 'orgId')
  if leaseOrg and leaseOrg ~= orgId then return 'unknown' end
  if leaseOrg then
    redis.call('SET', K.jobCancel(jobId), '1', 'EX', ttl)
    redis.call('PUBLISH', K.queueControl, cjson.encode({ type = 'cancel', jobId = jobId }))
    return 'cancelling'
  end
end
if status == 'queued' or status == 'retrying' then
  redis.call('SET', K.jobCancel(jobId), '1', 'EX', ttl)
  record_outcome(jobId, orgId, 'cancelled', result_json({
    jobId = jobId, orgId = orgId, status = 'cancelled', attempt = redis.call('GET', K.jobAttempt(jobId)),
    finishedAt = ARGV[3], code = 'CANCELLED', message = 'The job was cancelled before it ran.',
  }), ttl)
  return 'cancelled'
end
return 'unknown'

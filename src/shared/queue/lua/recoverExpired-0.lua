--[[
  recoverExpired: takes back the jobs of leases whose deadline passed (their worker died or lost Redis for longer
  than a lease) and puts them at the FRONT of their organisation's queue to run again as attempt + 1.

  Guarantees (one atomic step per call, at most ARGV[2] leases): the job re-enters its queue in the same step as
  the lease ends, so a late completion from the presumed-dead worker finds no lease and is refused as late. The
  next attempt number is kept in sri:job:{jobId}:attempt (the message stays byte for byte as pushed). A job that
  was cancelled while it ran is finished as 'cancelled' (result published) instead of going back.

  KEYS     none (K.queueLeases, K.lease, K.jobAttempt, K.jobStatus, K.jobCancel, K.orgDone, …)
  ARGV[1]  now, epoch ms ('' = Redis time)
  ARGV[2]  most leases recovered by this call
  ARGV[3]  finishedAt (ISO time) for results of cancelled jobs
  ARGV[4]  result / attempt TTL, seconds

  Returns the number of leases recovered.
]]
--@include helpers.lua

local now = tonumber(ARGV[1]) or now_ms()
local ttl = tonumber(ARGV[4])
local expired = redis.call('ZRANGEBYSCORE', K.queueLeases, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, token in ipairs(expired) do
  local lease = redis.call('HMGET', K.lease(token), 'orgId', 'jobId', 'attempt', 'workerId')
  local orgId, jobId, attempt = lease[1], lease[2], tonumber(lease[3]) or 1
  local raw = orgId and lease_raw(token)
  if not orgId then
    redis.call('ZREM', K.queueLeases, token)
  else
    if jobId ~= '' and is_terminal(redis.call('GET', K.jobStatus(jobId))) then
      -- already has its outcome (e.g. dead-lettered by an operator): nothing to run again
    elseif jobId ~= '' and redis.call('EXISTS', K.jobCancel(jobId)) == 1 then
      local _, msg = decode_job(raw, orgId, nil)
      msg = msg or {}
      record_outcome(jobId, orgId, 'cancelled', result_json({
        jobId = jobId, orgId = orgId, userId = msg['userId'], providerId = msg['providerId'], status = 'cancelled',
        attempt = attempt, workerId = lease[4], finishedAt = ARGV[3], code = 'CANCELLED',
        message = 'The job was cancelled while it ran.',
      }), ttl)
      redis.call('DEL', K.jobCancel(jobId))
    else
      lease_to_front(token, orgId, raw)
      if jobId ~= '' then
        redis.call('SET', K.jobAttempt(jobId), attempt + 1, 'EX', ttl)
        redis.call('SET', K.jobStatus(jobId), 'queued')
      end
    end
    end_lease(token, orgId, jobId)
  end
end
return #expired

--[[
  complete.lua: the completion transition as a function, shared by completeJob and completeAndTakeJob (see
  completeJob-0.lua for what it guarantees). Needs helpers.lua included before it.
]]

-- One finished job in the worker's counters (sri:worker:{id}:stats; the same arithmetic as recordJob-1.lua).
local function count_worker_job(statsKey, success, durationMs, finishedAt)
  local total = redis.call('HINCRBY', statsKey, 'totalJobs', 1)
  redis.call('HINCRBY', statsKey, success and 'successfulJobs' or 'failedJobs', 1)
  local sum = redis.call('HINCRBY', statsKey, 'totalDuration', durationMs)
  redis.call('HSET', statsKey, 'averageDuration', math.floor(sum / total), 'lastJobAt', finishedAt)
end

-- Returns 'recorded' or 'late'. workerId '' leaves the worker's counters alone.
local function complete(token, status, resultJson, ttl, workerId, durationMs, finishedAt)
  local lease = redis.call('HMGET', K.lease(token), 'orgId', 'jobId')
  local orgId, jobId = lease[1], lease[2]
  local held = orgId and jobId and jobId ~= '' and redis.call('MGET', K.jobLease(jobId), K.jobStatus(jobId))
  if not held or held[1] ~= token or is_terminal(held[2]) then
    redis.call('INCR', K.queueLateResults)
    if orgId then end_lease(token, orgId, jobId) end
    return 'late'
  end
  record_outcome(jobId, orgId, status, resultJson, ttl, true)
  -- The lease index is this token's (checked above): it goes with the lease, the attempt counter and the cancel
  -- flag in one DEL.
  end_lease(token, orgId, nil, { K.jobLease(jobId), K.jobAttempt(jobId), K.jobCancel(jobId) })
  if workerId ~= '' then count_worker_job(K.workerStats(workerId), status == 'done', durationMs, finishedAt) end
  return 'recorded'
end

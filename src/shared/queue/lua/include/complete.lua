--[[
  complete.lua: the completion transition as a function, shared by completeJob and completeAndTakeJob (see
  completeJob-10.lua for what it guarantees and for the keys). Needs helpers.lua included before it.
]]
local COMPLETE_KEYS = 10

-- The completion's keys from KEYS[first …]: lease, message, leases, byOrg, jobLeases, late counter, the job's
-- status, result and cancel flag, the worker's stats hash.
local function complete_keys(first)
  return {
    lease = KEYS[first], message = KEYS[first + 1], leases = KEYS[first + 2], byOrg = KEYS[first + 3],
    jobLeases = KEYS[first + 4], late = KEYS[first + 5], status = KEYS[first + 6], result = KEYS[first + 7],
    cancel = KEYS[first + 8], stats = KEYS[first + 9],
  }
end

-- One finished job in the worker's counters (sri:worker:{id}:stats; the same arithmetic as recordJob-1.lua).
local function count_worker_job(statsKey, success, durationMs, finishedAt)
  local total = redis.call('HINCRBY', statsKey, 'totalJobs', 1)
  redis.call('HINCRBY', statsKey, success and 'successfulJobs' or 'failedJobs', 1)
  local sum = redis.call('HINCRBY', statsKey, 'totalDuration', durationMs)
  redis.call('HSET', statsKey, 'averageDuration', math.floor(sum / total), 'lastJobAt', finishedAt)
end

-- Returns CODE.Ok (recorded) or CODE.Late. `count` false leaves the worker's counters alone.
local function complete(C, token, jobId, status, resultJson, ttl, doneChannel, count, durationMs, finishedAt)
  local lease = redis.call('HMGET', C.lease, 'orgId', 'jobId')
  local orgId, leasedJob = lease[1], lease[2]
  -- The lease must be this job's (the keys of this call are those of `jobId`), held by this token, and the job
  -- must have no outcome yet.
  if not orgId or leasedJob ~= jobId or jobId == '' or redis.call('HGET', C.jobLeases, jobId) ~= token
      or is_terminal(redis.call('GET', C.status)) then
    redis.call('INCR', C.late)
    if orgId then end_lease(C, token, orgId, leasedJob) end
    return CODE.Late
  end
  record_outcome(C.status, C.result, doneChannel, status, resultJson, ttl)
  -- The cancel flag goes with the lease in one DEL.
  end_lease(C, token, orgId, jobId, { also = { C.cancel } })
  if count then count_worker_job(C.stats, status == 'done', durationMs, finishedAt) end
  return CODE.Ok
end

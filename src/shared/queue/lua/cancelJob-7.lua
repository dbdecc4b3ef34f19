--[[
  cancelJob: cancels a job wherever it is.

  Guarantees (one atomic step):
  - a job with a terminal status is left alone (Final);
  - a leased (running) job of this organisation gets the cancel flag and a message on the control channel
    sri:control, which its worker follows by closing the job's browser context (Cancelling); the worker then
    records 'cancelled' through completeJob; if the worker died, recoverLease finishes it as cancelled;
  - a queued or retrying job becomes 'cancelled' at once, its result is stored and published, and the take (by
    sri:queue:cancelled) or promoteRetry (by the flag) drops its message, so it never runs (Cancelled);
  - anything else is Unknown (no status, or a lease of another organisation).
  The caller read the job's take token (sri:queue:job-leases) to name the lease's record in KEYS[3]; if the job's
  lease changed meanwhile the reply is Stale and nothing is written (the caller reads again).

  KEYS[1]  sri:job:{jobId}:status          string
  KEYS[2]  sri:queue:job-leases            hash, job id → take token
  KEYS[3]  sri:lease:{token}               hash, the lease record of the token read ('' token: any key, unused)
  KEYS[4]  sri:job:{jobId}:cancel          string, TTL ARGV[5]
  KEYS[5]  sri:job:{jobId}:result          string
  KEYS[6]  sri:queue:attempts              hash, job id → attempt of its next take
  KEYS[7]  sri:queue:cancelled             set, jobs cancelled while they waited
  ARGV[1]  organisation id
  ARGV[2]  job id
  ARGV[3]  the take token read ('' when the job had none)
  ARGV[4]  finishedAt (ISO time)
  ARGV[5]  result TTL, seconds (the cancel flag lives as long)
  ARGV[6]  the control channel (sri:control)
  ARGV[7]  the organisation's result channel (sri:org:{orgId}:done)

  Returns {Final}, {Cancelling}, {Cancelled}, {Unknown} or {Stale}.
]]
--@include helpers.lua

local orgId, jobId, ttl = ARGV[1], ARGV[2], tonumber(ARGV[5])
local status = redis.call('GET', KEYS[1])
if is_terminal(status) then return { CODE.Final } end
local token = redis.call('HGET', KEYS[2], jobId)
if (token or '') ~= ARGV[3] then return { CODE.Stale } end
if token then
  local leaseOrg = redis.call('HGET', KEYS[3], 'orgId')
  if leaseOrg and leaseOrg ~= orgId then return { CODE.Unknown } end
  if leaseOrg then
    redis.call('SET', KEYS[4], '1', 'EX', ttl)
    redis.call('PUBLISH', ARGV[6], cjson.encode({ type = 'cancel', jobId = jobId }))
    return { CODE.Cancelling }
  end
end
if status == 'queued' or status == 'retrying' then
  redis.call('SET', KEYS[4], '1', 'EX', ttl)
  -- A queued job's message is in a ready or producer list, where only the take meets it.
  if status == 'queued' then redis.call('SADD', KEYS[7], jobId) end
  record_outcome(KEYS[1], KEYS[5], ARGV[7], 'cancelled', result_json({
    jobId = jobId, orgId = orgId, status = 'cancelled', attempt = redis.call('HGET', KEYS[6], jobId),
    finishedAt = ARGV[4], code = 'CANCELLED', message = 'The job was cancelled before it ran.',
  }), ttl)
  return { CODE.Cancelled }
end
return { CODE.Unknown }

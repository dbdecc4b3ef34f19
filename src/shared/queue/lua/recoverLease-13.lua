--[[
  recoverLease: takes back the job of one lease whose deadline passed (its worker died or lost Redis for longer
  than a lease) and puts it at the FRONT of its organisation's queue to run again as attempt + 1.

  Guarantees (one atomic step): the job re-enters its queue in the same step as the lease ends, so a late
  completion from the presumed-dead worker finds no lease and is refused as late. The next attempt number is kept
  in sri:queue:attempts (the message stays byte for byte as pushed). A job that was cancelled while it ran is
  finished as 'cancelled' (result published) instead of going back. The caller found the token with readDue and
  the lease's organisation and job in its record; both are checked again here (Stale when they changed, e.g. the
  lease was renewed or another worker recovered it). A deadline without a lease record is just removed.

  KEYS[1]   sri:queue:leases                sorted set, take token → deadline
  KEYS[2]   sri:lease:{token}               hash, the lease record
  KEYS[3]   sri:lease:{token}:message       list, the leased message
  KEYS[4]   sri:queue:leased-by-org         hash
  KEYS[5]   sri:queue:job-leases            hash, job id → take token
  KEYS[6]   sri:queue:attempts              hash, job id → attempt of its next take
  KEYS[7]   sri:job:{jobId}:status          string
  KEYS[8]   sri:job:{jobId}:cancel          string
  KEYS[9]   sri:job:{jobId}:result          string
  KEYS[10]  sri:org:{orgId}:ready:high      list
  KEYS[11]  sri:org:{orgId}:ready:normal    list
  KEYS[12]  sri:queue:ring                  list
  KEYS[13]  sri:queue:ring:members          set
  ARGV[1]   take token
  ARGV[2]   organisation id of the lease ('' when the caller found no record)
  ARGV[3]   job id of the lease ('' when none)
  ARGV[4]   now, epoch ms (readDue's)
  ARGV[5]   finishedAt (ISO time) for the result of a cancelled job
  ARGV[6]   result TTL, seconds
  ARGV[7]   the organisation's result channel (sri:org:{orgId}:done)

  Returns {Ok} (recovered, or a stray deadline removed) or {Stale}.
]]
--@include helpers.lua

local L = { lease = KEYS[2], message = KEYS[3], leases = KEYS[1], byOrg = KEYS[4], jobLeases = KEYS[5] }
local token, orgId, jobId = ARGV[1], ARGV[2], ARGV[3]
local score = redis.call('ZSCORE', L.leases, token)
if not score or tonumber(score) > tonumber(ARGV[4]) then return { CODE.Stale } end
local lease = redis.call('HMGET', L.lease, 'orgId', 'jobId', 'attempt', 'workerId')
if not lease[1] then
  redis.call('ZREM', L.leases, token)
  return { CODE.Ok }
end
if lease[1] ~= orgId or lease[2] ~= jobId then return { CODE.Stale } end
local attempt = tonumber(lease[3]) or 1
local ttl = tonumber(ARGV[6])
local raw = lease_raw(L.lease, L.message)
if jobId ~= '' and is_terminal(redis.call('GET', KEYS[7])) then
  -- already has its outcome (e.g. dead-lettered by an operator): nothing to run again
elseif jobId ~= '' and redis.call('EXISTS', KEYS[8]) == 1 then
  local _, msg = decode_job(raw or '', orgId, nil)
  msg = msg or {}
  record_outcome(KEYS[7], KEYS[9], ARGV[7], 'cancelled', result_json({
    jobId = jobId, orgId = orgId, userId = msg['userId'], providerId = msg['providerId'], status = 'cancelled',
    attempt = attempt, workerId = lease[4], finishedAt = ARGV[5], code = 'CANCELLED',
    message = 'The job was cancelled while it ran.',
  }), ttl)
  redis.call('DEL', KEYS[8])
else
  message_to_front(L.message, KEYS[10], KEYS[11], raw)
  register_org(KEYS[12], KEYS[13], orgId)
  if jobId ~= '' then
    redis.call('HSET', KEYS[6], jobId, attempt + 1)
    redis.call('SET', KEYS[7], 'queued')
  end
end
end_lease(L, token, orgId, jobId)
return { CODE.Ok }

--[[
  helpers.lua: shared by the queue scripts through `--@include helpers.lua` (the loader pastes it in once per
  script at connect). Expects the generated table `K` of key builders (from src/shared/keys.ts) above it.
  Every key these helpers touch is built at run time from ids found in messages and leases, so the queue needs a
  non-cluster Redis (docs/queue.md "Limits").
]]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function valid_id(s)
  return type(s) == 'string' and string.len(s) <= 128 and string.match(s, '^[%w_.%-]+$') ~= nil and s ~= '.' and s ~= '..'
end

local TERMINAL = { done = true, failed = true, cancelled = true, dead = true }
local function is_terminal(status)
  return status ~= false and status ~= nil and TERMINAL[status] == true
end

-- A plain search, no JSON decoding: cheap enough to run on every message moved out of the producer list.
-- A nested "priority":"high" inside metadata would also match; docs/queue.md says so.
local function is_high(raw)
  return string.find(raw, '"priority"%s*:%s*"high"') ~= nil
end

-- Puts a ring member in: idempotent, new organisations join at the head (served after the current rotation).
local function register_org(orgId)
  if redis.call('SADD', K.queueRingMembers, orgId) == 1 then
    redis.call('LPUSH', K.queueRing, orgId)
  end
end

-- The FRONT of the organisation's queue: the right end of its ready list (taken next), by priority.
local function push_front(orgId, raw)
  if is_high(raw) then
    redis.call('RPUSH', K.orgReadyHigh(orgId), raw)
  else
    redis.call('RPUSH', K.orgReadyNormal(orgId), raw)
  end
  register_org(orgId)
end

-- The leased message: the one element of the lease's message list (moved there by the take with LMOVE); leases
-- made by an older release kept it in the lease record's `raw` field.
local function lease_raw(token)
  local raw = redis.call('LINDEX', K.leaseMessage(token), 0)
  if not raw then raw = redis.call('HGET', K.lease(token), 'raw') end
  return raw
end

-- A leased message back to the FRONT of its organisation's queue (release, recovery): moved with LMOVE, so the
-- append-only file records key names only, not the message again.
local function lease_to_front(token, orgId, raw)
  if not raw then return end
  local dest = is_high(raw) and K.orgReadyHigh(orgId) or K.orgReadyNormal(orgId)
  if not redis.call('LMOVE', K.leaseMessage(token), dest, 'LEFT', 'RIGHT') then
    redis.call('RPUSH', dest, raw)
  end
  register_org(orgId)
end

-- Decodes a message and returns (jobId, msg) when its jobId is a plain id and its orgId is the queue's
-- organisation; (nil, msg-or-nil) otherwise. Messages over maxBytes are not decoded at all.
local function decode_job(raw, orgId, maxBytes)
  if maxBytes and string.len(raw) > maxBytes then return nil, nil end
  local ok, msg = pcall(cjson.decode, raw)
  if not ok or type(msg) ~= 'table' then return nil, nil end
  if valid_id(msg['jobId']) and msg['orgId'] == orgId then return msg['jobId'], msg end
  return nil, msg
end

-- Ends a lease everywhere it is recorded (lease hash, deadline set, job index, per-organisation count).
-- `also`: more keys to delete in the same DEL (optional).
local function end_lease(token, orgId, jobId, also)
  if also then
    redis.call('DEL', K.lease(token), K.leaseMessage(token), unpack(also))
  else
    redis.call('DEL', K.lease(token), K.leaseMessage(token))
  end
  redis.call('ZREM', K.queueLeases, token)
  if jobId and jobId ~= '' and redis.call('GET', K.jobLease(jobId)) == token then
    redis.call('DEL', K.jobLease(jobId))
  end
  if orgId and orgId ~= '' then
    if redis.call('HINCRBY', K.queueLeasedByOrg, orgId, -1) <= 0 then
      redis.call('HDEL', K.queueLeasedByOrg, orgId)
    end
  end
end

-- Records a job's terminal outcome: status, stored result (TTL), published result; clears its side keys.
-- `keepAttempt`: the caller deletes the attempt counter itself (in a DEL of its own with other keys).
local function record_outcome(jobId, orgId, status, resultJson, ttl, keepAttempt)
  redis.call('SET', K.jobStatus(jobId), status)
  redis.call('SET', K.jobResult(jobId), resultJson, 'EX', ttl)
  if not keepAttempt then redis.call('DEL', K.jobAttempt(jobId)) end
  redis.call('PUBLISH', K.orgDone(orgId), resultJson)
end

-- A result message built here (cancel, recovery of a cancelled job): no evidence files.
-- cjson encodes an empty table as {}, so the files object is appended as text to keep screenshots an array.
local function result_json(f)
  local body = cjson.encode({
    jobId = f.jobId, orgId = f.orgId, userId = f.userId or '', providerId = f.providerId or '',
    success = false, status = f.status, duration = 0, attempt = tonumber(f.attempt) or 1,
    workerId = f.workerId or '', finishedAt = f.finishedAt, error = { code = f.code, message = f.message },
  })
  return string.sub(body, 1, -2) .. ',"files":{"log":"","screenshots":[]}}'
end

-- Adds a dead-letter entry and returns its id (`<epoch ms>-<seq>`).
local function dlq_add(orgId, jobId, reason, raw, truncated, at)
  local id = tostring(at) .. '-' .. tostring(redis.call('INCR', K.dlqSeq))
  local entry = { id = id, orgId = orgId, reason = reason, raw = raw, truncated = truncated, at = at }
  if jobId and jobId ~= '' then entry['jobId'] = jobId end
  redis.call('HSET', K.dlqEntries, id, cjson.encode(entry))
  redis.call('ZADD', K.dlqIndex, at, id)
  redis.call('LPUSH', K.orgDlq(orgId), id)
  return id
end

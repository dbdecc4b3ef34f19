--[[
  take.lua: the take transition as a function, shared by takeJob and completeAndTakeJob (see takeJob-0.lua for
  what it guarantees). Needs helpers.lua included before it.
]]
local MOVE_BYTES = 4 * 1024 * 1024

local function take(token, workerId, leaseMs, maxBytes, batch)
  local now = now_ms()

  -- The same take sent again (its reply was lost and the client resent it after reconnecting): the token already
  -- names a lease, so answer with that lease instead of leasing a second job under the same token (which would
  -- orphan the first one: its lease record would be overwritten and it could never be recovered).
  local prior = redis.call('HMGET', K.lease(token), 'orgId', 'jobId', 'attempt', 'recovered')
  if prior[1] then
    local deadline = tonumber(redis.call('ZSCORE', K.queueLeases, token)) or now
    return { prior[1], lease_raw(token), prior[2], tonumber(prior[3]) or 1, deadline, tonumber(prior[4]) or 0 }
  end

  local minute = tostring(math.floor(now / 60000))

  local function under_quota(org)
    local q = redis.call('HMGET', K.orgQuota(org), 'maxConcurrent', 'perMinute')
    local maxConcurrent, perMinute = tonumber(q[1]), tonumber(q[2])
    if maxConcurrent and (tonumber(redis.call('HGET', K.queueLeasedByOrg, org)) or 0) >= maxConcurrent then
      return false, perMinute
    end
    if perMinute and (tonumber(redis.call('GET', K.orgMinute(org, minute))) or 0) >= perMinute then
      return false, perMinute
    end
    return true, perMinute
  end

  -- Moves up to `batch` of the oldest producer messages into the ready lists, oldest first: one LRANGE to read
  -- them (reads are not written to the append-only file), one LMOVE each (written as key names, not bytes).
  -- At most MOVE_BYTES of messages are scanned per take.
  local function refill(org)
    local src = K.orgJobs(org)
    local got = redis.call('LRANGE', src, -batch, -1)
    local high, normal, scanned = K.orgReadyHigh(org), K.orgReadyNormal(org), 0
    for i = #got, 1, -1 do
      local raw = got[i]
      redis.call('LMOVE', src, is_high(raw) and high or normal, 'RIGHT', 'LEFT')
      scanned = scanned + string.len(raw)
      if scanned >= MOVE_BYTES then return end
    end
  end

  -- Pops the next message of the organisation that was not cancelled while queued; nil when none.
  local function pop(org)
    refill(org)
    -- The message moves into the lease's own list (LMOVE: no copy of its bytes in the append-only file).
    local high, normal, held = K.orgReadyHigh(org), K.orgReadyNormal(org), K.leaseMessage(token)
    while true do
      local raw = redis.call('LMOVE', high, held, 'RIGHT', 'LEFT')
      if not raw then raw = redis.call('LMOVE', normal, held, 'RIGHT', 'LEFT') end
      if not raw then return nil end
      local jobId, msg = decode_job(raw, org, maxBytes)
      if not jobId then return raw, nil, msg end
      -- cancel flag, status, recorded attempt: one read
      local st = redis.call('MGET', K.jobCancel(jobId), K.jobStatus(jobId), K.jobAttempt(jobId))
      if not st[1] and st[2] ~= 'cancelled' then return raw, jobId, msg, tonumber(st[3]) end
      redis.call('DEL', held)
    end
  end

  local n = redis.call('LLEN', K.queueRing)
  for _ = 1, n do
    local org = redis.call('RPOPLPUSH', K.queueRing, K.queueRing)
    local ok, perMinute = under_quota(org)
    if ok then
      local raw, jobId, msg, stored = pop(org)
      if raw then
        local attempt, recovered = 1, 0
        if msg and tonumber(msg['attempt']) then attempt = math.max(1, math.floor(tonumber(msg['attempt']))) end
        if stored and stored > attempt then attempt, recovered = stored, 1 end
        local deadline = now + leaseMs
        redis.call('ZADD', K.queueLeases, deadline, token)
        redis.call('HSET', K.lease(token), 'orgId', org, 'jobId', jobId or '', 'attempt', attempt,
          'workerId', workerId, 'takenAt', now, 'recovered', recovered)
        if jobId then
          redis.call('SET', K.jobLease(jobId), token)
          -- A finished job id pushed again runs again (the README's "change one character and push again"); with
          -- REQUIRE_JOB_SIGNATURE the worker refuses it as a replay (keys.jobFinished) instead.
          redis.call('SET', K.jobStatus(jobId), 'running')
        end
        redis.call('HINCRBY', K.queueLeasedByOrg, org, 1)
        if perMinute then
          local mk = K.orgMinute(org, minute)
          redis.call('INCR', mk)
          redis.call('EXPIRE', mk, 120)
        end
        return { org, raw, jobId or '', attempt, deadline, recovered }
      end
    end
  end
  return false
end

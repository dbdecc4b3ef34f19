--[[
  take.lua: the take transition as a function, shared by takeJob and completeAndTakeJob (see takeJob-10.lua for
  what it guarantees and for the keys). Needs helpers.lua included before it.
]]
local MOVE_BYTES = 4 * 1024 * 1024
local TAKE_FIXED_KEYS = 10
local ORG_KEYS = 3

--[[
  The take's keys from KEYS[first …] — ten fixed ones, then three per organisation — and its organisations from
  `orgArgs`: per organisation its id, maxConcurrent and perMinute ('' = no limit), in the order of the keys.
  With `shared` (completeAndTakeJob), the leases, byOrg and jobLeases keys are the completion's, and KEYS[first …]
  holds the seven others: ring, members, attempts, cancelled, rate, lease, message.
]]
local function take_keys(first, orgArgs, shared)
  if #orgArgs % 3 ~= 0 then error('take: organisation arguments come in threes (id, maxConcurrent, perMinute)') end
  local ids = {}
  for i = 1, #orgArgs, 3 do ids[#ids + 1] = orgArgs[i] end
  local T, fixed
  if shared then
    T = {
      ring = KEYS[first], members = KEYS[first + 1], attempts = KEYS[first + 2], cancelled = KEYS[first + 3],
      rate = KEYS[first + 4], lease = KEYS[first + 5], message = KEYS[first + 6],
      leases = shared.leases, byOrg = shared.byOrg, jobLeases = shared.jobLeases,
    }
    fixed = 7
  else
    T = {
      ring = KEYS[first], members = KEYS[first + 1], leases = KEYS[first + 2], byOrg = KEYS[first + 3],
      jobLeases = KEYS[first + 4], attempts = KEYS[first + 5], cancelled = KEYS[first + 6], rate = KEYS[first + 7],
      lease = KEYS[first + 8], message = KEYS[first + 9],
    }
    fixed = TAKE_FIXED_KEYS
  end
  if #KEYS ~= first + fixed - 1 + ORG_KEYS * #ids then
    error('take: ' .. #KEYS .. ' keys for ' .. #ids .. ' organisations')
  end
  local orgs = {}
  for i, id in ipairs(ids) do
    local k = first + fixed + (i - 1) * ORG_KEYS
    orgs[id] = { jobs = KEYS[k], high = KEYS[k + 1], normal = KEYS[k + 2],
      maxConcurrent = tonumber(orgArgs[3 * i - 1]), perMinute = tonumber(orgArgs[3 * i]) }
  end
  return T, orgs
end

-- The ring's next `window` organisations in the order takes serve them (the tail first), after its length.
local function ring_window(ringKey, window)
  local out = { CODE.RingMiss, redis.call('LLEN', ringKey) }
  local ids = redis.call('LRANGE', ringKey, -window, -1)
  for i = #ids, 1, -1 do out[#out + 1] = ids[i] end
  return out
end

local function take(T, orgs, token, workerId, leaseMs, maxBytes, batch, window)
  local now = now_ms()

  -- The same take sent again (its reply was lost and the client resent it after reconnecting): the token already
  -- names a lease, so answer with that lease instead of leasing a second job under the same token (which would
  -- orphan the first one: its lease record would be overwritten and it could never be recovered).
  local prior = redis.call('HMGET', T.lease, 'orgId', 'jobId', 'attempt', 'recovered')
  if prior[1] then
    local deadline = tonumber(redis.call('ZSCORE', T.leases, token)) or now
    return { CODE.Ok, prior[1], lease_raw(T.lease, T.message), prior[2], tonumber(prior[3]) or 1, deadline, tonumber(prior[4]) or 0 }
  end

  local minute = tostring(math.floor(now / 60000))

  -- Jobs taken by the organisation in this clock minute (sri:queue:rate keeps `<minute>:<count>`).
  local function taken_this_minute(id)
    local m, n = string.match(redis.call('HGET', T.rate, id) or '', '^(%d+):(%d+)$')
    return m == minute and tonumber(n) or 0
  end

  -- The quota comes with the call (the caller reads sri:org:{orgId}:quota, which workers may only read: a script's
  -- KEYS need write access), so the counters it is checked against are the only quota state written here.
  local function under_quota(id, o)
    local maxConcurrent, perMinute = o.maxConcurrent, o.perMinute
    if maxConcurrent and (tonumber(redis.call('HGET', T.byOrg, id)) or 0) >= maxConcurrent then
      return false, perMinute
    end
    if perMinute and taken_this_minute(id) >= perMinute then
      return false, perMinute
    end
    return true, perMinute
  end

  -- Moves up to `batch` of the oldest producer messages into the ready lists, oldest first: one LRANGE to read
  -- them (reads are not written to the append-only file), one LMOVE each (written as key names, not bytes).
  -- At most MOVE_BYTES of messages are scanned per take.
  local function refill(o)
    local got = redis.call('LRANGE', o.jobs, -batch, -1)
    local scanned = 0
    for i = #got, 1, -1 do
      local raw = got[i]
      redis.call('LMOVE', o.jobs, is_high(raw) and o.high or o.normal, 'RIGHT', 'LEFT')
      scanned = scanned + string.len(raw)
      if scanned >= MOVE_BYTES then return end
    end
  end

  -- Pops the next message of the organisation that was not cancelled while it waited; nil when none.
  local function pop(id, o)
    refill(o)
    -- The message moves into the lease's own list (LMOVE: no copy of its bytes in the append-only file).
    while true do
      local raw = redis.call('LMOVE', o.high, T.message, 'RIGHT', 'LEFT')
      if not raw then raw = redis.call('LMOVE', o.normal, T.message, 'RIGHT', 'LEFT') end
      if not raw then return nil end
      local jobId, msg = decode_job(raw, id, maxBytes)
      if not jobId then return raw, nil, msg end
      if redis.call('SREM', T.cancelled, jobId) == 0 then return raw, jobId, msg end
      -- cancelled while it waited (cancelJob published its result): dropped
      redis.call('DEL', T.message)
      redis.call('HDEL', T.attempts, jobId)
    end
  end

  local n = redis.call('LLEN', T.ring)
  for _ = 1, n do
    local id = redis.call('LINDEX', T.ring, -1)
    if not id then break end
    local o = orgs[id]
    -- An organisation whose keys this call does not carry: touching them is not allowed (on Cluster, nor in
    -- spirit on one Redis), so the caller is told the ring's next ones and calls again with those.
    if not o then return ring_window(T.ring, window) end
    redis.call('RPOPLPUSH', T.ring, T.ring)
    local ok, perMinute = under_quota(id, o)
    if ok then
      local raw, jobId, msg = pop(id, o)
      if raw then
        local attempt, recovered = 1, 0
        if msg and tonumber(msg['attempt']) then attempt = math.max(1, math.floor(tonumber(msg['attempt']))) end
        if jobId then
          local stored = tonumber(redis.call('HGET', T.attempts, jobId))
          if stored then
            redis.call('HDEL', T.attempts, jobId)
            if stored > attempt then attempt, recovered = stored, 1 end
          end
        end
        local deadline = now + leaseMs
        redis.call('ZADD', T.leases, deadline, token)
        redis.call('HSET', T.lease, 'orgId', id, 'jobId', jobId or '', 'attempt', attempt,
          'workerId', workerId, 'takenAt', now, 'recovered', recovered)
        -- The job → token index is what cancel, complete and retry check; status 'running' follows in startJob
        -- (the job's status key is known only now, so it cannot be in this call's KEYS).
        if jobId then redis.call('HSET', T.jobLeases, jobId, token) end
        redis.call('HINCRBY', T.byOrg, id, 1)
        if perMinute then redis.call('HSET', T.rate, id, minute .. ':' .. (taken_this_minute(id) + 1)) end
        return { CODE.Ok, id, raw, jobId or '', attempt, deadline, recovered }
      elseif redis.call('LLEN', o.jobs) == 0 then
        -- Nothing waits: the organisation leaves the ring (it was just rotated to the head). A push through the
        -- queue puts it back at once, a plain LPUSH at the workers' next discovery.
        redis.call('LPOP', T.ring)
        redis.call('SREM', T.members, id)
      end
    end
  end
  return { CODE.Nothing }
end

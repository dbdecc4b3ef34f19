--[[
  take.lua: the take transition as a function, shared by takeJob and completeAndTakeJob (see takeJob-12.lua for
  what it guarantees and for the keys). Needs helpers.lua included before it.
]]
local MOVE_BYTES = 4 * 1024 * 1024
local TAKE_FIXED_KEYS = 12
local ORG_KEYS = 3
-- Jobs one take may park (their account is full) before it leaves the organisation for this turn.
local PARK_BATCH = 32

--[[
  The take's keys from KEYS[first …] — twelve fixed ones, then three per organisation — and its organisations from
  `orgArgs`: per organisation its id, maxConcurrent and perMinute ('' = no limit), in the order of the keys.
  With `shared` (completeAndTakeJob), the leases, byOrg and jobLeases keys are the completion's, and KEYS[first …]
  holds the nine others: ring, members, attempts, cancelled, rate, lease, message, parked, parked jobs.
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
      parked = KEYS[first + 7], parkedJobs = KEYS[first + 8],
      leases = shared.leases, byOrg = shared.byOrg, jobLeases = shared.jobLeases,
    }
    fixed = 9
  else
    T = {
      ring = KEYS[first], members = KEYS[first + 1], leases = KEYS[first + 2], byOrg = KEYS[first + 3],
      jobLeases = KEYS[first + 4], attempts = KEYS[first + 5], cancelled = KEYS[first + 6], rate = KEYS[first + 7],
      lease = KEYS[first + 8], message = KEYS[first + 9], parked = KEYS[first + 10], parkedJobs = KEYS[first + 11],
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

  -- ── one run at a time per portal account (docs/queue.md "One run at a time per portal account") ──────────
  -- A job whose account already has as many leases as its limit is parked: member `<account>\t<seq>\t<limit>\t<h|n>`
  -- of the sorted set T.parked (all scores 0, so ZRANGEBYLEX orders by account, then by seq: per account in the
  -- order they were parked), its message under the same name in the hash T.parkedJobs (whose field `seq` numbers
  -- the parks). It holds no lease and no worker slot. It goes back first once its account has room (see pop).

  local function has_room(account, limit)
    return (tonumber(redis.call('HGET', T.byOrg, account)) or 0) < limit
  end

  local function park(account, limit, raw)
    local seq = redis.call('HINCRBY', T.parkedJobs, 'seq', 1)
    local member = account .. '\t' .. string.format('%016d', seq) .. '\t' .. limit .. '\t' .. (is_high(raw) and 'h' or 'n')
    redis.call('ZADD', T.parked, 0, member)
    redis.call('HSET', T.parkedJobs, member, raw)
  end

  -- The parked job of the organisation to take now: the oldest of an account with room, high priority first;
  -- nil when none. One ZRANGEBYLEX per account with parked jobs (the oldest of each, then the next account).
  local function parked_with_room(id)
    local best, bestHigh, bestSeq
    local from, to = '[' .. id .. '/', '(' .. id .. '0' -- '0' follows '/': the organisation's accounts only
    while true do
      local m = redis.call('ZRANGEBYLEX', T.parked, from, to, 'LIMIT', 0, 1)[1]
      if not m then break end
      local account, seq, limit, prio = string.match(m, '^([^\t]+)\t(%d+)\t(%d+)\t([hn])$')
      if not account then
        from = '(' .. m -- not ours to read: step over it
      else
        if has_room(account, tonumber(limit)) then
          local high, n = prio == 'h', tonumber(seq)
          if not best or (high and not bestHigh) or (high == bestHigh and n < bestSeq) then
            best, bestHigh, bestSeq = m, high, n
          end
        end
        from = '[' .. account .. '\t:' -- ':' follows the digits: past every member of this account
      end
    end
    return best, bestHigh
  end

  local function has_parked(id)
    return redis.call('ZRANGEBYLEX', T.parked, '[' .. id .. '/', '(' .. id .. '0', 'LIMIT', 0, 1)[1] ~= nil
  end

  -- Pops the next message of the organisation that was not cancelled while it waited and whose account has room:
  -- a parked one first (it was at the front of the queue when it was parked) unless a high-priority job waits
  -- before a normal parked one; jobs met whose account is full are parked (at most PARK_BATCH, 4 MiB, per take).
  -- Returns raw, jobId, msg, account; nil when nothing can be taken now.
  local function pop(id, o)
    refill(o)
    local parks, parkedBytes = 0, 0
    -- The message moves into the lease's own list (LMOVE: no copy of its bytes in the append-only file).
    while true do
      local raw, fromParked
      local member, high = parked_with_room(id)
      if member and (high or redis.call('LLEN', o.high) == 0) then
        raw = redis.call('HGET', T.parkedJobs, member)
        redis.call('ZREM', T.parked, member)
        redis.call('HDEL', T.parkedJobs, member)
        if raw then
          redis.call('RPUSH', T.message, raw)
          fromParked = true
        end
      end
      if not fromParked then
        raw = redis.call('LMOVE', o.high, T.message, 'RIGHT', 'LEFT')
        if not raw then raw = redis.call('LMOVE', o.normal, T.message, 'RIGHT', 'LEFT') end
        if not raw then return nil end
      end
      local jobId, msg = decode_job(raw, id, maxBytes)
      if not jobId then return raw, nil, msg end
      if redis.call('SREM', T.cancelled, jobId) == 0 then
        local account = account_of(id, msg)
        if not account or fromParked then return raw, jobId, msg, account end
        local limit = account_limit(msg)
        if has_room(account, limit) then return raw, jobId, msg, account end
        if parks >= PARK_BATCH or parkedBytes >= MOVE_BYTES then
          -- enough parked for one take: this one goes back to the front, the organisation waits for its next turn
          message_to_front(T.message, o.high, o.normal, raw)
          return nil
        end
        park(account, limit, raw)
        redis.call('DEL', T.message)
        parks, parkedBytes = parks + 1, parkedBytes + string.len(raw)
      else
        -- cancelled while it waited (cancelJob published its result): dropped
        redis.call('DEL', T.message)
        redis.call('HDEL', T.attempts, jobId)
      end
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
      local raw, jobId, msg, account = pop(id, o)
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
        -- The account's hold: released with the lease (end_lease), whichever step ends it.
        if account then
          redis.call('HSET', T.lease, 'account', account)
          redis.call('HINCRBY', T.byOrg, account, 1)
        end
        -- The job → token index is what cancel, complete and retry check; status 'running' follows in startJob
        -- (the job's status key is known only now, so it cannot be in this call's KEYS).
        if jobId then redis.call('HSET', T.jobLeases, jobId, token) end
        redis.call('HINCRBY', T.byOrg, id, 1)
        if perMinute then redis.call('HSET', T.rate, id, minute .. ':' .. (taken_this_minute(id) + 1)) end
        return { CODE.Ok, id, raw, jobId or '', attempt, deadline, recovered }
      elseif redis.call('LLEN', o.jobs) == 0 and redis.call('LLEN', o.high) == 0 and redis.call('LLEN', o.normal) == 0
          and not has_parked(id) then
        -- Nothing waits: the organisation leaves the ring (it was just rotated to the head). A push through the
        -- queue puts it back at once, a plain LPUSH at the workers' next discovery. One with parked jobs stays:
        -- nothing else would bring it back when their account gets room.
        redis.call('LPOP', T.ring)
        redis.call('SREM', T.members, id)
      end
    end
  end
  return { CODE.Nothing }
end

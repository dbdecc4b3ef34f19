--[[
  helpers.lua: shared by the queue scripts through `--@include helpers.lua` (the loader pastes it in once per
  script). Every key a helper touches is a parameter, taken by the calling script from its KEYS: no key name is
  built here, so the scripts run on Redis Cluster (all the keys of one deployment's queue carry one hash tag and
  live in one slot). Channel names (PUBLISH) are not keys and come in ARGV. CODE and TERMINAL are generated from
  TypeScript (src/shared/queue/codes.ts luaPrelude) and put above.
]]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function valid_id(s)
  return type(s) == 'string' and string.len(s) <= 128 and string.match(s, '^[%w_.%-]+$') ~= nil and s ~= '.' and s ~= '..'
end

local function is_terminal(status)
  return status ~= false and status ~= nil and TERMINAL[status] == true
end

-- A plain search, no JSON decoding: cheap enough to run on every message moved out of the producer list.
-- A nested "priority":"high" inside metadata would also match; docs/queue.md says so.
local function is_high(raw)
  return string.find(raw, '"priority"%s*:%s*"high"') ~= nil
end

-- Puts an organisation in the ring: idempotent, a new member joins at the head (served after the current rotation).
local function register_org(ringKey, membersKey, orgId)
  if redis.call('SADD', membersKey, orgId) == 1 then
    redis.call('LPUSH', ringKey, orgId)
  end
end

-- The FRONT of an organisation's queue: the right end of its ready list (taken next), by priority.
local function push_front(highKey, normalKey, raw)
  redis.call('RPUSH', is_high(raw) and highKey or normalKey, raw)
end

-- The leased message: the one element of the lease's message list (moved there by the take with LMOVE); leases
-- made by a release before v3 kept it in the lease record's `raw` field.
local function lease_raw(leaseKey, messageKey)
  local raw = redis.call('LINDEX', messageKey, 0)
  if not raw then raw = redis.call('HGET', leaseKey, 'raw') end
  return raw
end

-- A held message (a lease's, or a retry's waiting) back to the FRONT of its organisation's queue: moved with
-- LMOVE, so the append-only file records key names only, not the message again.
local function message_to_front(messageKey, highKey, normalKey, raw)
  if not raw then return end
  local dest = is_high(raw) and highKey or normalKey
  if not redis.call('LMOVE', messageKey, dest, 'LEFT', 'RIGHT') then
    redis.call('RPUSH', dest, raw)
  end
end

--[[
  The portal account (the session) a decoded job uses: `<orgId>/<userId>/<providerName>`, the ids of its session key
  sri:sessions:{orgId}:{userId}:{providerName}; nil when the message names none. Ids never contain '/', so the field
  cannot be an organisation's in sri:queue:leased-by-org, where the leases holding each account are counted.
]]
-- Claims the due entry `token` of a waiting set (delayed retries, deferred jobs: a sorted set token → due time and
-- a hash token → {"o","j",…}) for `orgId`/`jobId`, removing it from both. Returns the entry, or nil and the
-- script's answer: {Stale} when it is not due or now names another job (another worker promoted it meanwhile),
-- {Dropped} when its entry is gone (a due time without its entry).
local function claim_due(zsetKey, hashKey, token, now, orgId, jobId)
  local score = redis.call('ZSCORE', zsetKey, token)
  if not score or tonumber(score) > tonumber(now) then return nil, { CODE.Stale } end
  local data = redis.call('HGET', hashKey, token)
  if not data then
    redis.call('ZREM', zsetKey, token)
    return nil, { CODE.Dropped }
  end
  local d = cjson.decode(data)
  if d['o'] ~= orgId or d['j'] ~= jobId then return nil, { CODE.Stale } end
  redis.call('ZREM', zsetKey, token)
  redis.call('HDEL', hashKey, token)
  return d
end

local function account_of(orgId, msg)
  if type(msg) ~= 'table' or not valid_id(msg['userId']) or not valid_id(msg['providerName']) then return nil end
  return orgId .. '/' .. msg['userId'] .. '/' .. msg['providerName']
end

-- How many of an account's jobs may hold it at once: the job's maxConcurrentPerAccount (set by the control plane
-- from the provider catalogue), 1 when absent or not a whole number ≥ 1.
local function account_limit(msg)
  local n = type(msg) == 'table' and tonumber(msg['maxConcurrentPerAccount']) or nil
  if n and n >= 1 then return math.floor(n) end
  return 1
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

--[[
  Ends a lease everywhere it is recorded. L holds the keys: lease (record), message (held message), leases
  (deadlines), byOrg (leases per organisation, and per portal account: see account_of), jobLeases (job id → token).
  `opts.keepMessage`: the held message stays (a retry parks the next attempt's message there); `opts.also`: more
  keys deleted in the same DEL. The lease's hold on its portal account (the record's `account` field, written by
  the take) is released here, so every step that ends a lease — complete, retry, bury, release, recovery of a dead
  worker's lease, and any later one built on this helper — releases it in the same step.
]]
local function end_lease(L, token, orgId, jobId, opts)
  local account = redis.call('HGET', L.lease, 'account')
  if account and account ~= '' then
    if redis.call('HINCRBY', L.byOrg, account, -1) <= 0 then
      redis.call('HDEL', L.byOrg, account)
    end
  end
  local dels = { L.lease }
  if not (opts and opts.keepMessage) then dels[#dels + 1] = L.message end
  if opts and opts.also then
    for _, k in ipairs(opts.also) do dels[#dels + 1] = k end
  end
  redis.call('DEL', unpack(dels))
  redis.call('ZREM', L.leases, token)
  if jobId and jobId ~= '' and redis.call('HGET', L.jobLeases, jobId) == token then
    redis.call('HDEL', L.jobLeases, jobId)
  end
  if orgId and orgId ~= '' then
    if redis.call('HINCRBY', L.byOrg, orgId, -1) <= 0 then
      redis.call('HDEL', L.byOrg, orgId)
    end
  end
end

-- Records a job's terminal outcome: status, stored result (TTL), result published on the organisation's channel.
local function record_outcome(statusKey, resultKey, doneChannel, status, resultJson, ttl)
  redis.call('SET', statusKey, status)
  redis.call('SET', resultKey, resultJson, 'EX', ttl)
  redis.call('PUBLISH', doneChannel, resultJson)
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

-- Adds a dead-letter entry and returns its id (`<epoch ms>-<seq>`). D holds the keys: entries, index, seq,
-- orgDlq (this organisation's list), orgs (organisations with entries).
local function dlq_add(D, orgId, jobId, reason, raw, truncated, at)
  local id = tostring(at) .. '-' .. tostring(redis.call('INCR', D.seq))
  local entry = { id = id, orgId = orgId, reason = reason, raw = raw, truncated = truncated, at = at }
  if jobId and jobId ~= '' then entry['jobId'] = jobId end
  redis.call('HSET', D.entries, id, cjson.encode(entry))
  redis.call('ZADD', D.index, at, id)
  redis.call('LPUSH', D.orgDlq, id)
  redis.call('SADD', D.orgs, orgId)
  return id
end

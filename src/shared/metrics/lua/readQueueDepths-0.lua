--[[
  readQueueDepths: how many jobs wait in each organisation's queue and when the front job of its deepest queues was
  created, for the metrics endpoints (sri_queue_length, sri_queue_oldest_job_age_seconds). It only reads.

  Guarantees: one consistent snapshot of every queue; bounded work — three LLEN (O(1)) per organisation of the ring,
  then, for at most ARGV[1] organisations (the deepest), three LINDEX of the front message and a plain-text search
  for its "createdAt" (no JSON decoding, so a huge message costs one linear scan, not a parse).

  Waiting jobs are those of the producer list and of the two ready lists; leased, delayed (retrying) and
  dead-lettered ones are not counted. The front of each list is its right end (producers LPUSH; released,
  recovered and promoted jobs are RPUSHed) — docs/queue.md.

  KEYS: none — key names are built here from the prefixes and suffixes given (they come from src/shared/keys.ts),
        as the queue's scripts build theirs; a single Redis, not Cluster (docs/queue.md "Limits").
  ARGV[1]  how many organisations to report one by one, deepest first (0 = only the totals)
  ARGV[2]  the ring's member set (sri:queue:ring:members): the organisations looked at
  ARGV[3]  prefix and ARGV[4] suffix of an organisation's producer list  (sri:org: … :jobs)
  ARGV[5]  prefix and ARGV[6] suffix of its ready:high list
  ARGV[7]  prefix and ARGV[8] suffix of its ready:normal list

  Returns { organisations looked at, organisations with waiting jobs, waiting jobs in all,
            { orgId, waiting, createdAt of the producer list's front, of ready:high's, of ready:normal's } … }
  where a createdAt is the raw JSON value without quotes, or '' when the list is empty or has none.
]]
local limit = tonumber(ARGV[1])
local members = redis.call('SMEMBERS', ARGV[2])

local function createdAtOfFront(key)
  local raw = redis.call('LINDEX', key, -1)
  if not raw then return '' end
  local _, e = string.find(raw, '"createdAt"', 1, true)
  if not e then return '' end
  return string.match(raw, '^%s*:%s*"?([^",}%s]+)', e + 1) or ''
end

local waiting = {}
local total = 0
for _, org in ipairs(members) do
  local n = redis.call('LLEN', ARGV[3] .. org .. ARGV[4])
    + redis.call('LLEN', ARGV[5] .. org .. ARGV[6])
    + redis.call('LLEN', ARGV[7] .. org .. ARGV[8])
  if n > 0 then
    waiting[#waiting + 1] = { org, n }
    total = total + n
  end
end

table.sort(waiting, function(a, b)
  if a[2] ~= b[2] then return a[2] > b[2] end
  return a[1] < b[1]
end)

local out = { #members, #waiting, total }
for i = 1, math.min(limit, #waiting) do
  local org = waiting[i][1]
  out[#out + 1] = {
    org, waiting[i][2],
    createdAtOfFront(ARGV[3] .. org .. ARGV[4]),
    createdAtOfFront(ARGV[5] .. org .. ARGV[6]),
    createdAtOfFront(ARGV[7] .. org .. ARGV[8]),
  }
end
return out

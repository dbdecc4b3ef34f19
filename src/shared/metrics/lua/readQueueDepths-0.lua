--[[
  readQueueDepths: how many jobs wait in each organisation's queue and when the front job of its deepest queues was
  created, for the metrics endpoints (sri_queue_length, sri_queue_oldest_job_age_seconds). It only reads.

  Guarantees: one consistent snapshot of every queue given; bounded work — three LLEN (O(1)) per organisation,
  then, for at most ARGV[1] organisations (the deepest), three LINDEX of the front message and a plain-text search
  for its "createdAt" (no JSON decoding, so a huge message costs one linear scan, not a parse).

  Waiting jobs are those of the producer list and of the two ready lists; leased, delayed (retrying) and
  dead-lettered ones are not counted. The front of each list is its right end (producers LPUSH; released,
  recovered and promoted jobs are RPUSHed) — docs/queue.md. The caller names the organisations (the ring's members
  and sri:orgs) and passes their lists: every key read is in KEYS, so this runs on Redis Cluster too.

  KEYS[1…]  three per organisation of ARGV[2…], in the same order:
            sri:org:{orgId}:jobs, sri:org:{orgId}:ready:high, sri:org:{orgId}:ready:normal
  ARGV[1]   how many organisations to report one by one, deepest first (0 = only the totals)
  ARGV[2…]  organisation ids

  Returns { organisations looked at, organisations with waiting jobs, waiting jobs in all,
            { orgId, waiting, createdAt of the producer list's front, of ready:high's, of ready:normal's } … }
  where a createdAt is the raw JSON value without quotes, or '' when the list is empty or has none.
]]
if #KEYS ~= 3 * (#ARGV - 1) then error('readQueueDepths: ' .. #KEYS .. ' keys for ' .. (#ARGV - 1) .. ' organisations') end
local limit = tonumber(ARGV[1])

local function createdAtOfFront(key)
  local raw = redis.call('LINDEX', key, -1)
  if not raw then return '' end
  local _, e = string.find(raw, '"createdAt"', 1, true)
  if not e then return '' end
  return string.match(raw, '^%s*:%s*"?([^",}%s]+)', e + 1) or ''
end

local waiting = {}
local total = 0
for i = 2, #ARGV do
  local k = 3 * (i - 2)
  local n = redis.call('LLEN', KEYS[k + 1]) + redis.call('LLEN', KEYS[k + 2]) + redis.call('LLEN', KEYS[k + 3])
  if n > 0 then
    waiting[#waiting + 1] = { ARGV[i], n, k }
    total = total + n
  end
end

table.sort(waiting, function(a, b)
  if a[2] ~= b[2] then return a[2] > b[2] end
  return a[1] < b[1]
end)

local out = { #ARGV - 1, #waiting, total }
for i = 1, math.min(limit, #waiting) do
  local org, n, k = waiting[i][1], waiting[i][2], waiting[i][3]
  out[#out + 1] = { org, n, createdAtOfFront(KEYS[k + 1]), createdAtOfFront(KEYS[k + 2]), createdAtOfFront(KEYS[k + 3]) }
end
return out

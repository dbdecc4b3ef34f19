--[[
  requeueDeadLetter: takes an entry off the dead-letter list and pushes its message back like a producer's.

  Guarantees (one atomic step): the entry leaves the dead-letter list in the same step as its message enters the
  queue. Truncated entries are not requeued (the message is incomplete). The job's attempt bookkeeping and cancel
  marks are cleared; its status becomes 'queued'. The caller read the entry to name its organisation's and job's
  keys; an entry that changed meanwhile is Stale (nothing written).

  KEYS[1]   sri:dlq:entries                 hash
  KEYS[2]   sri:dlq:index                   sorted set
  KEYS[3]   sri:org:{orgId}:dlq             list
  KEYS[4]   sri:org:{orgId}:jobs            list, the producer list
  KEYS[5]   sri:job:{jobId}:status          string ('' job id: any key, unused)
  KEYS[6]   sri:queue:attempts              hash
  KEYS[7]   sri:job:{jobId}:cancel          string
  KEYS[8]   sri:queue:cancelled             set
  KEYS[9]   sri:queue:ring                  list
  KEYS[10]  sri:queue:ring:members          set
  ARGV[1]   entry id
  ARGV[2]   the entry's organisation id
  ARGV[3]   the entry's job id ('' when none)

  Returns {Ok}, {Missing}, {Truncated} or {Stale}.
]]
--@include helpers.lua

local id, orgId, jobId = ARGV[1], ARGV[2], ARGV[3]
local data = redis.call('HGET', KEYS[1], id)
if not data then return { CODE.Missing } end
local e = cjson.decode(data)
if e['orgId'] ~= orgId or (e['jobId'] or '') ~= jobId then return { CODE.Stale } end
if e['truncated'] == true then return { CODE.Truncated } end
redis.call('HDEL', KEYS[1], id)
redis.call('ZREM', KEYS[2], id)
redis.call('LREM', KEYS[3], 1, id)
redis.call('LPUSH', KEYS[4], e['raw'])
if valid_id(jobId) then
  redis.call('HDEL', KEYS[6], jobId)
  redis.call('DEL', KEYS[7])
  redis.call('SREM', KEYS[8], jobId)
  redis.call('SET', KEYS[5], 'queued')
end
register_org(KEYS[9], KEYS[10], orgId)
return { CODE.Ok }

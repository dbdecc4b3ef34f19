--[[
  requeueDeadLetter: takes an entry off the dead-letter list and pushes its message back like a producer's.

  Guarantees (one atomic step): the entry leaves the dead-letter list in the same step as its message enters the
  queue. Truncated entries are not requeued (the message is incomplete). The job's attempt bookkeeping and cancel
  flag are cleared; its status becomes 'queued'.

  KEYS     none (K.dlqEntries, K.dlqIndex, K.orgDlq, K.orgJobs, K.jobStatus, K.jobAttempt, K.jobCancel)
  ARGV[1]  entry id

  Returns 1 when requeued, 0 when the entry is missing or truncated.
]]
--@include helpers.lua

local id = ARGV[1]
local data = redis.call('HGET', K.dlqEntries, id)
if not data then return 0 end
local e = cjson.decode(data)
if e['truncated'] == true then return 0 end
redis.call('HDEL', K.dlqEntries, id)
redis.call('ZREM', K.dlqIndex, id)
redis.call('LREM', K.orgDlq(e['orgId']), 1, id)
redis.call('LPUSH', K.orgJobs(e['orgId']), e['raw'])
local jobId = e['jobId']
if valid_id(jobId) then
  redis.call('DEL', K.jobAttempt(jobId), K.jobCancel(jobId))
  redis.call('SET', K.jobStatus(jobId), 'queued')
end
register_org(e['orgId'])
return 1

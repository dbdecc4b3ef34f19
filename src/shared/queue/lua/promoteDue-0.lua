--[[
  promoteDue: moves retries whose time has come back to the FRONT of their organisation's queue.

  Guarantees (one atomic step per call, at most ARGV[2] jobs): a due retry leaves the delayed set in the same step
  as it enters its queue (status 'queued'); a job cancelled while it waited is dropped instead.

  KEYS     none (K.queueDelayed, K.queueDelayedJobs, K.orgReadyHigh/Normal, K.jobStatus, K.jobCancel)
  ARGV[1]  now, epoch ms ('' = Redis time)
  ARGV[2]  most jobs moved by this call

  Returns the number of jobs promoted (dropped ones not counted).
]]
--@include helpers.lua

local now = tonumber(ARGV[1]) or now_ms()
local due = redis.call('ZRANGEBYSCORE', K.queueDelayed, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local promoted = 0
for _, token in ipairs(due) do
  local data = redis.call('HGET', K.queueDelayedJobs, token)
  redis.call('ZREM', K.queueDelayed, token)
  redis.call('HDEL', K.queueDelayedJobs, token)
  if data then
    local d = cjson.decode(data)
    local jobId = d['j']
    if redis.call('EXISTS', K.jobCancel(jobId)) == 0 and redis.call('GET', K.jobStatus(jobId)) == 'retrying' then
      push_front(d['o'], d['r'])
      redis.call('SET', K.jobStatus(jobId), 'queued')
      promoted = promoted + 1
    end
  end
end
return promoted

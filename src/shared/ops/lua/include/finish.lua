-- Ends the lease of `taskId` with `status`: the result waits in sri:ops:results until the control plane records it,
-- the update mark goes when it was this task's, and the channel is told. K = { lease, statuses, results, active }.
local function finish(K, taskId, status, result, channel)
  redis.call('DEL', K.lease)
  redis.call('HSET', K.statuses, taskId, status)
  redis.call('HSET', K.results, taskId, result)
  if redis.call('GET', K.active) == taskId then redis.call('DEL', K.active) end
  redis.call('PUBLISH', channel, cjson.encode({ taskId = taskId, status = status }))
end

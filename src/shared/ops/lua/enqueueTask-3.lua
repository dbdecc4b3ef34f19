--[[
  enqueueTask: puts one ops task on the operations worker's queue, refusing a second system.update while one is
  queued or running (its rollback included: the mark goes only when the task's outcome is written).

  Guarantees (one atomic step): the status `queued`, the update mark and the push happen together or not at all.

  KEYS[1]   sri:ops:jobs            list, waiting tasks (LPUSH; the ops worker takes the oldest, right end)
  KEYS[2]   sri:ops:statuses        hash, task id → status
  KEYS[3]   sri:ops:active-update   string, id of the update queued or running
  ARGV[1]   task id
  ARGV[2]   the task message, JSON
  ARGV[3]   '1' when the task is a system.update

  Returns {Ok} or {Busy, id of the update queued or running}.
]]
if ARGV[3] == '1' then
  local active = redis.call('GET', KEYS[3])
  if active then return { CODE.Busy, active } end
  redis.call('SET', KEYS[3], ARGV[1])
end
redis.call('HSET', KEYS[2], ARGV[1], 'queued')
redis.call('LPUSH', KEYS[1], ARGV[2])
return { CODE.Ok }

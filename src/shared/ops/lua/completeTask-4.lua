--[[
  completeTask: records the outcome of the running task, when the caller still holds its lease.

  Guarantees (one atomic step): lease ended, status, result and the end of the update mark together; a worker whose
  lease was recovered meanwhile (the task is already `interrupted`) changes nothing.

  KEYS[1]   sri:ops:lease           hash
  KEYS[2]   sri:ops:statuses        hash
  KEYS[3]   sri:ops:results         hash, task id → result JSON (until the control plane records it)
  KEYS[4]   sri:ops:active-update   string
  ARGV[1]   take token
  ARGV[2]   task id
  ARGV[3]   status: done | failed
  ARGV[4]   result message, JSON
  ARGV[5]   the results channel (sri:ops:done)

  Returns {Ok} or {Late}.
]]
--@include finish.lua
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'taskId') ~= ARGV[2] then
  return { CODE.Late }
end
finish({ lease = KEYS[1], statuses = KEYS[2], results = KEYS[3], active = KEYS[4] }, ARGV[2], ARGV[3], ARGV[4], ARGV[5])
return { CODE.Ok }

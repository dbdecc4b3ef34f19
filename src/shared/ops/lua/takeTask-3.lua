--[[
  takeTask: leases the oldest waiting ops task to one ops worker, when no task runs: one task at a time across every
  ops worker (a second waits in the list).

  Guarantees (one atomic step): the pop, the lease and the status `running` are written together, so a task is
  always either in the list or in the lease, or finished. The lease keeps the message byte for byte.

  KEYS[1]   sri:ops:jobs            list
  KEYS[2]   sri:ops:lease           hash: token, taskId, kind, workerId, takenAt, deadline, raw
  KEYS[3]   sri:ops:statuses        hash
  ARGV[1]   take token (unique per take)
  ARGV[2]   ops worker id
  ARGV[3]   now, epoch ms
  ARGV[4]   lease duration, ms

  Returns {Ok, raw}, {Nothing} when no task waits, {Busy, workerId} when a task is leased already (to anyone:
  an expired lease is recovered first, recoverLease-4.lua), or {Invalid, raw} for a message that is not JSON with a
  taskId (dropped: it can have no outcome to record).
]]
if redis.call('EXISTS', KEYS[2]) == 1 then
  return { CODE.Busy, redis.call('HGET', KEYS[2], 'workerId') or '' }
end
local raw = redis.call('RPOP', KEYS[1])
if not raw then return { CODE.Nothing } end
local ok, msg = pcall(cjson.decode, raw)
if not ok or type(msg) ~= 'table' or type(msg.taskId) ~= 'string' or msg.taskId == '' then
  return { CODE.Invalid, raw }
end
local now = tonumber(ARGV[3])
redis.call('HSET', KEYS[2], 'token', ARGV[1], 'taskId', msg.taskId, 'kind', tostring(msg.kind or ''), 'workerId', ARGV[2],
  'takenAt', now, 'deadline', now + tonumber(ARGV[4]), 'raw', raw)
redis.call('HSET', KEYS[3], msg.taskId, 'running')
return { CODE.Ok, raw }

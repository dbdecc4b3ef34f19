--[[
  recoverLease: ends the lease of a task whose ops worker died (kill -9, power loss) and reports the task
  `interrupted`. It is never run again: an update is not idempotent, and half of one needs an operator's look.

  Guarantees (one atomic step, as completeTask): the lease is taken back only when it is the one the caller read
  (same token) and either its deadline passed or the caller is the same ops worker id starting again (its previous
  process is dead: one process per id).

  KEYS[1]   sri:ops:lease           hash
  KEYS[2]   sri:ops:statuses        hash
  KEYS[3]   sri:ops:results         hash
  KEYS[4]   sri:ops:active-update   string
  ARGV[1]   take token of the lease read
  ARGV[2]   now, epoch ms
  ARGV[3]   '1' when the caller's worker id is the lease's (recover whatever the deadline)
  ARGV[4]   the interrupted result message, JSON
  ARGV[5]   the results channel (sri:ops:done)

  Returns {Ok, taskId} or {Stale} (no lease, another lease, or not expired).
]]
--@include finish.lua
local lease = redis.call('HMGET', KEYS[1], 'token', 'taskId', 'deadline')
if lease[1] ~= ARGV[1] then return { CODE.Stale } end
if ARGV[3] ~= '1' and tonumber(lease[3] or '0') > tonumber(ARGV[2]) then return { CODE.Stale } end
finish({ lease = KEYS[1], statuses = KEYS[2], results = KEYS[3], active = KEYS[4] }, lease[2], 'interrupted', ARGV[4], ARGV[5])
return { CODE.Ok, lease[2] }

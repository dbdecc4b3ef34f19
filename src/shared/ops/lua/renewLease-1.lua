--[[
  renewLease: moves the deadline of the running task's lease, when the caller still holds it.

  KEYS[1]   sri:ops:lease           hash
  ARGV[1]   take token
  ARGV[2]   new deadline, epoch ms

  Returns {Ok}, or {Lost} when the lease is gone or another token's (it expired and was recovered: the task was
  reported interrupted, and the caller must stop it).
]]
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return { CODE.Lost } end
redis.call('HSET', KEYS[1], 'deadline', ARGV[2])
return { CODE.Ok }

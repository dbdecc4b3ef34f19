--[[
  renewLeases: pushes the deadline of every lease a live worker holds forward by one lease duration.

  Guarantees (one atomic step): only leases still recorded for this worker are renewed; a lease that expired
  and was recovered (or finished) is never brought back. A job runs as long as its worker renews, however long.

  KEYS[1]   sri:queue:leases            sorted set, take token → deadline
  KEYS[2…]  sri:lease:{token}           hash, one per token of ARGV[3…], in the same order
  ARGV[1]   worker id
  ARGV[2]   lease duration, ms
  ARGV[3…]  take tokens

  Returns {Ok, token…}: the tokens whose lease is gone (their jobs must be stopped: another worker may run them).
]]
--@include helpers.lua

if #KEYS ~= #ARGV - 1 then error('renewLeases: ' .. (#KEYS - 1) .. ' lease keys for ' .. (#ARGV - 2) .. ' tokens') end
local deadline = now_ms() + tonumber(ARGV[2])
local out = { CODE.Ok }
for i = 3, #ARGV do
  local token = ARGV[i]
  if redis.call('HGET', KEYS[i - 1], 'workerId') == ARGV[1] then
    redis.call('ZADD', KEYS[1], 'XX', deadline, token)
  else
    out[#out + 1] = token
  end
end
return out

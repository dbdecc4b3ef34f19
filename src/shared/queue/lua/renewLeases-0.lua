--[[
  renewLeases: pushes the deadline of every lease a live worker holds forward by one lease duration.

  Guarantees (one atomic step): only leases still recorded for this worker are renewed; a lease that expired
  and was recovered (or finished) is never brought back. A job runs as long as its worker renews, however long.

  KEYS     none (K.queueLeases, K.lease(token))
  ARGV[1]  worker id
  ARGV[2]  lease duration, ms
  ARGV[3…] take tokens

  Returns the tokens whose lease is gone (their jobs must be stopped: another worker may run them).
]]
--@include helpers.lua

local deadline = now_ms() + tonumber(ARGV[2])
local gone = {}
for i = 3, #ARGV do
  local token = ARGV[i]
  if redis.call('HGET', K.lease(token), 'workerId') == ARGV[1] then
    redis.call('ZADD', K.queueLeases, 'XX', deadline, token)
  else
    gone[#gone + 1] = token
  end
end
return gone

--[[
  recordLoginFailure: counts one failed login of an account and locks the account when the count reaches the limit.

  Guarantees (one atomic step): the count and the lock agree however many API processes fail logins of the same
  account at once; the window starts at the first failure (fixed window), so a failure never stretches it; reaching
  the limit locks the account for ARGV[3] ms and starts a new count.

  KEYS[1]  sri:auth:failures:{account}  string counter, TTL = the window (ARGV[2] ms, set at the first failure)
  KEYS[2]  sri:auth:locked:{account}    string (the count that locked it), TTL = the lock (ARGV[3] ms)
  ARGV[1]  failures that lock the account (>= 1)
  ARGV[2]  window of the count, ms
  ARGV[3]  how long the account stays locked, ms

  Returns { failures counted in this window, ms the account is locked for now (0 = not locked) }.
]]
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], n, 'PX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return { n, tonumber(ARGV[3]) }
end
return { n, 0 }

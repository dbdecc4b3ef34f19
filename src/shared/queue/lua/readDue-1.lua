--[[
  readDue: the members of a sorted set whose score (a deadline, a due time) has passed, by Redis time. The first,
  read-only step of recovery (sri:queue:leases) and promotion (sri:queue:delayed): the caller then reads what each
  member is about and calls recoverLease / promoteRetry with that member's keys, which check again.

  KEYS[1]  the sorted set
  ARGV[1]  now, epoch ms ('' = Redis time)
  ARGV[2]  most members returned

  Returns {Ok, now, member…}, oldest first.
]]
--@include helpers.lua

local now = tonumber(ARGV[1]) or now_ms()
local out = { CODE.Ok, now }
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))) do
  out[#out + 1] = m
end
return out

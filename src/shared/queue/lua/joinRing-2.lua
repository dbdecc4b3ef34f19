--[[
  joinRing: puts organisations a worker discovered (a client pushed to their producer list directly) in the ring the
  take script rotates (idempotent; new members are served after the current rotation).

  KEYS[1]  sri:queue:ring              list
  KEYS[2]  sri:queue:ring:members      set
  ARGV[1…] organisation ids (invalid ids are skipped)

  Returns {Ok, number of organisations newly in the ring}.
]]
--@include helpers.lua

local added = 0
for _, orgId in ipairs(ARGV) do
  if valid_id(orgId) then
    if redis.call('SISMEMBER', KEYS[2], orgId) == 0 then added = added + 1 end
    register_org(KEYS[1], KEYS[2], orgId)
  end
end
return { CODE.Ok, added }

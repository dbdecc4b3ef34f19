--[[
  registerOrgs: the control plane's registration of organisations: each in sri:orgs and in the ring the take script
  rotates (idempotent). Workers put the organisations they discover in the ring with joinRing-2.lua (they may only
  read sri:orgs).

  KEYS[1]  sri:orgs                    set, organisations known to the control plane
  KEYS[2]  sri:queue:ring              list
  KEYS[3]  sri:queue:ring:members      set
  ARGV[1…] organisation ids (invalid ids are skipped)

  Returns {Ok, number of organisations newly in the ring}.
]]
--@include helpers.lua

local added = 0
for _, orgId in ipairs(ARGV) do
  if valid_id(orgId) then
    redis.call('SADD', KEYS[1], orgId)
    if redis.call('SISMEMBER', KEYS[3], orgId) == 0 then added = added + 1 end
    register_org(KEYS[2], KEYS[3], orgId)
  end
end
return { CODE.Ok, added }

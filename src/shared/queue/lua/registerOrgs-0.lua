--[[
  registerOrgs: adds organisations to the ring the take script rotates (idempotent).

  KEYS     none (K.queueRing, K.queueRingMembers, K.orgs)
  ARGV[1]  '1' to also add them to sri:orgs (control plane), '0' not to (workers' discovery)
  ARGV[2…] organisation ids (invalid ids are skipped)

  Returns the number of organisations newly in the ring.
]]
--@include helpers.lua

local added = 0
for i = 2, #ARGV do
  local orgId = ARGV[i]
  if valid_id(orgId) then
    if ARGV[1] == '1' then redis.call('SADD', K.orgs, orgId) end
    if redis.call('SISMEMBER', K.queueRingMembers, orgId) == 0 then added = added + 1 end
    register_org(orgId)
  end
end
return added

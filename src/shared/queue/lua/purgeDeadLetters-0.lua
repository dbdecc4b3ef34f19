--[[
  purgeDeadLetters: deletes the dead-letter entries of one organisation, or of all.

  Guarantees (one atomic step): the entries, the global index and the per-organisation lists stay in agreement.
  Runs in time linear in the number of entries deleted (Redis is busy meanwhile): purge regularly.

  KEYS     none (K.dlqEntries, K.dlqIndex, K.orgDlq)
  ARGV[1]  organisation id ('' = all organisations)

  Returns the number of entries deleted.
]]
--@include helpers.lua

local orgId = ARGV[1]
local n = 0
if orgId ~= '' then
  local ids = redis.call('LRANGE', K.orgDlq(orgId), 0, -1)
  for _, id in ipairs(ids) do
    n = n + redis.call('HDEL', K.dlqEntries, id)
    redis.call('ZREM', K.dlqIndex, id)
  end
  redis.call('DEL', K.orgDlq(orgId))
  return n
end
local orgs = {}
for _, data in ipairs(redis.call('HVALS', K.dlqEntries)) do
  local e = cjson.decode(data)
  orgs[e['orgId']] = true
  n = n + 1
end
for org in pairs(orgs) do redis.call('DEL', K.orgDlq(org)) end
redis.call('DEL', K.dlqEntries, K.dlqIndex)
return n

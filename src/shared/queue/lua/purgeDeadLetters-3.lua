--[[
  purgeDeadLetters: deletes the dead-letter entries of one organisation, or of all.

  Guarantees (one atomic step): the entries, the global index and the per-organisation lists stay in agreement.
  One organisation's purge runs in time linear in its entries; purging all deletes the hashes whole. Purging all
  needs every organisation with entries among KEYS[4…] (the caller reads sri:dlq:orgs first); when one is missing
  (an entry of a new organisation arrived meanwhile) the reply is Stale and nothing is deleted.

  KEYS[1]   sri:dlq:entries                 hash
  KEYS[2]   sri:dlq:index                   sorted set
  KEYS[3]   sri:dlq:orgs                    set, organisations with entries
  KEYS[4…]  sri:org:{orgId}:dlq             list, one per organisation of ARGV[2…], in the same order
  ARGV[1]   'org' (exactly one organisation in ARGV[2]) or 'all'
  ARGV[2…]  organisation ids

  Returns {Ok, number of entries deleted} or {Stale}.
]]
--@include helpers.lua

if #KEYS ~= #ARGV + 2 then error('purgeDeadLetters: ' .. (#KEYS - 3) .. ' lists for ' .. (#ARGV - 1) .. ' organisations') end
if ARGV[1] == 'org' then
  local n = 0
  for _, id in ipairs(redis.call('LRANGE', KEYS[4], 0, -1)) do
    n = n + redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
  end
  redis.call('DEL', KEYS[4])
  redis.call('SREM', KEYS[3], ARGV[2])
  return { CODE.Ok, n }
end
local given = {}
for i = 2, #ARGV do given[ARGV[i]] = true end
for _, org in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if not given[org] then return { CODE.Stale } end
end
local n = redis.call('HLEN', KEYS[1])
redis.call('DEL', unpack(KEYS))
return { CODE.Ok, n }

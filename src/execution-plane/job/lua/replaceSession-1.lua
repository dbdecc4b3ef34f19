--[[
  replaceSession: writes a connection's refreshed session (new cookies after a login, or cookies the portal renewed
  during a job) over the one the job read, and over nothing else.

  Guarantees (one atomic step): the session is replaced only while its key still holds exactly the value the job
  loaded (or last wrote) — a session connected again through the API meanwhile, or deleted (disconnected, expired),
  is left as it is; the key's TTL starts again at ARGV[3] seconds (the connection's lifetime, the session's
  ttlSeconds) when given, else it keeps its TTL.

  KEYS[1]  sri:sessions:{orgId}:{userId}:{providerName}  string (sealed or plain JSON session), TTL
  ARGV[1]  the value the job expects the key to hold
  ARGV[2]  the new value
  ARGV[3]  optional: the connection's lifetime in seconds, from now

  Returns 1 when the session was replaced, 0 when the key no longer held ARGV[1].
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local ttl = tonumber(ARGV[3] or '')
if ttl and ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
end
return 1

--[[
  setWorkerConfig: replaces the workers' live configuration document if its version is still the one the writer read
  (optimistic concurrency), records the change in the audit list and announces the new version to the workers.

  Guarantees (one atomic step): the document is replaced whole or not at all; two writers that read the same version
  cannot both succeed (the second gets Conflict and the version it must reread); the audit entry and the
  announcement exist exactly when the write happened. A stored document that is not JSON or has no whole,
  non-negative `version` counts as version 0 (so an operator can replace a document written badly by hand).

  KEYS[1]  sri:worker-config           string, the document JSON {version, config, updatedAt, updatedBy}
  KEYS[2]  sri:worker-config:history   list, audit entries JSON, newest first
  ARGV[1]  the version the writer read (0: no document yet)
  ARGV[2]  the new document JSON, its `version` already ARGV[1] + 1 (validated by the caller)
  ARGV[3]  the audit entry JSON
  ARGV[4]  how many audit entries to keep
  ARGV[5]  the channel to announce on (sri:worker-config:changed; channels have no slot)
  ARGV[6]  the announcement JSON {"version":n}

  Returns {Ok, the new version} or {Conflict, the stored version}.
]]
local current = 0
local raw = redis.call('GET', KEYS[1])
if raw then
  local ok, doc = pcall(cjson.decode, raw)
  if ok and type(doc) == 'table' and type(doc.version) == 'number' and doc.version >= 0 and math.floor(doc.version) == doc.version then
    current = doc.version
  end
end
if tonumber(ARGV[1]) ~= current then
  return { CODE.Conflict, current }
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
redis.call('PUBLISH', ARGV[5], ARGV[6])
return { CODE.Ok, current + 1 }

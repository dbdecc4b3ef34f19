--[[
  deadLetterJob: parks a message the worker cannot run (not JSON, or not a job message) so it is never lost.

  Guarantees (one atomic step): the record enters the dead-letter list in the same step as the message leaves
  the worker's active hash, so the message is always in exactly one place. The list is never trimmed here:
  an operator reads and clears it.

  KEYS[1]  sri:dlq                       list, newest first (LPUSH)
  KEYS[2]  sri:worker:{workerId}:active  the take token ARGV[2] is removed from it
  ARGV[1]  record JSON {reason, raw, orgId, at, workerId}
  ARGV[2]  take token

  Returns the length of the dead-letter list.
]]
local n = redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[2])
return n

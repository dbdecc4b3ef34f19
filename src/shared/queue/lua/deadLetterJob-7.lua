--[[
  deadLetterJob: adds a message nobody holds a lease on to an organisation's dead-letter list (control plane,
  tools); leased messages go through buryJob instead.

  Guarantees (one atomic step): the entry, and — for a job id without a terminal status — status 'dead', the
  stored and the published error result are written together.

  KEYS[1]  sri:dlq:entries                 hash
  KEYS[2]  sri:dlq:index                   sorted set
  KEYS[3]  sri:dlq:seq                     string
  KEYS[4]  sri:org:{orgId}:dlq             list
  KEYS[5]  sri:dlq:orgs                    set
  KEYS[6]  sri:job:{jobId}:status          string
  KEYS[7]  sri:job:{jobId}:result          string
  ARGV[1]  organisation id
  ARGV[2]  job id ('' when none)
  ARGV[3]  reason
  ARGV[4]  raw message as stored (possibly truncated)
  ARGV[5]  '1' when ARGV[4] is truncated
  ARGV[6]  time, epoch ms
  ARGV[7]  result message JSON ('' when no job id)
  ARGV[8]  result TTL, seconds
  ARGV[9]  the organisation's result channel (sri:org:{orgId}:done)

  Returns {Ok, entry id}.
]]
--@include helpers.lua

local orgId, jobId = ARGV[1], ARGV[2]
local id = dlq_add({ entries = KEYS[1], index = KEYS[2], seq = KEYS[3], orgDlq = KEYS[4], orgs = KEYS[5] },
  orgId, jobId, ARGV[3], ARGV[4], ARGV[5] == '1', tonumber(ARGV[6]))
if jobId ~= '' and ARGV[7] ~= '' and not is_terminal(redis.call('GET', KEYS[6])) then
  record_outcome(KEYS[6], KEYS[7], ARGV[9], 'dead', ARGV[7], tonumber(ARGV[8]))
end
return { CODE.Ok, id }

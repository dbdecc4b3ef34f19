--[[
  buryJob: moves a leased message the worker will not run (malformed, oversized, exhausted, poisoned) to the
  organisation's dead-letter list.

  Guarantees (one atomic step): while the lease is live, the dead-letter entry, the end of the lease and — when
  the worker could read a job id of this organisation — status 'dead', the stored and the published error result
  are written together. A lease already gone (recovered: the message is back in the queue) changes nothing but the
  late-results counter, so a message is never both queued and dead-lettered. A job that already has a terminal
  status keeps it (the entry is still written: the message is never lost).

  KEYS[1]   sri:lease:{token}               hash, the lease record
  KEYS[2]   sri:lease:{token}:message       list, the leased message
  KEYS[3]   sri:queue:leases                sorted set
  KEYS[4]   sri:queue:leased-by-org         hash
  KEYS[5]   sri:queue:job-leases            hash
  KEYS[6]   sri:queue:late-results          string, counter
  KEYS[7]   sri:dlq:entries                 hash, entry id → entry JSON
  KEYS[8]   sri:dlq:index                   sorted set, entry id → time
  KEYS[9]   sri:dlq:seq                     string, counter behind entry ids
  KEYS[10]  sri:org:{orgId}:dlq             list, the organisation's entry ids
  KEYS[11]  sri:dlq:orgs                    set, organisations with entries
  KEYS[12]  sri:job:{jobId}:status          string, of the job id the worker read (ARGV[7])
  KEYS[13]  sri:job:{jobId}:result          string
  ARGV[1]   take token
  ARGV[2]   organisation id of the lease
  ARGV[3]   reason
  ARGV[4]   raw message as stored in the entry (possibly truncated)
  ARGV[5]   '1' when ARGV[4] is truncated
  ARGV[6]   time, epoch ms
  ARGV[7]   job id the worker read ('' when none)
  ARGV[8]   result message JSON ('' when no job id)
  ARGV[9]   result TTL, seconds
  ARGV[10]  the organisation's result channel (sri:org:{orgId}:done)

  Returns {Ok, dead-letter entry id} or {Late}.
]]
--@include helpers.lua

local L = { lease = KEYS[1], message = KEYS[2], leases = KEYS[3], byOrg = KEYS[4], jobLeases = KEYS[5] }
local token, orgId = ARGV[1], ARGV[2]
local lease = redis.call('HMGET', L.lease, 'orgId', 'jobId')
local leasedJob = lease[2]
if not lease[1] or lease[1] ~= orgId or (leasedJob ~= '' and redis.call('HGET', L.jobLeases, leasedJob) ~= token) then
  redis.call('INCR', KEYS[6])
  return { CODE.Late }
end
local jobId = ARGV[7]
local id = dlq_add({ entries = KEYS[7], index = KEYS[8], seq = KEYS[9], orgDlq = KEYS[10], orgs = KEYS[11] },
  orgId, jobId, ARGV[3], ARGV[4], ARGV[5] == '1', tonumber(ARGV[6]))
if jobId ~= '' and ARGV[8] ~= '' and not is_terminal(redis.call('GET', KEYS[12])) then
  record_outcome(KEYS[12], KEYS[13], ARGV[10], 'dead', ARGV[8], tonumber(ARGV[9]))
end
end_lease(L, token, orgId, leasedJob)
return { CODE.Ok, id }

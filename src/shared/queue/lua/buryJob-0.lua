--[[
  buryJob: moves a leased message the worker will not run (malformed, oversized, exhausted, poisoned) to the
  organisation's dead-letter list.

  Guarantees (one atomic step): while the lease is live, the dead-letter entry, the end of the lease and — when
  the worker could read a job id of this organisation — status 'dead', the stored and the published error result
  are written together. A lease already gone (recovered: the message is back in the queue) changes nothing but the
  late-results counter, so a message is never both queued and dead-lettered. A job that already has a terminal
  status keeps it (the entry is still written: the message is never lost).

  KEYS     none (K.lease, K.dlqEntries, K.dlqIndex, K.orgDlq, K.jobStatus, K.jobResult, K.orgDone, …)
  ARGV[1]  take token
  ARGV[2]  reason
  ARGV[3]  raw message as stored in the entry (possibly truncated)
  ARGV[4]  '1' when ARGV[3] is truncated
  ARGV[5]  job id the worker read ('' when none)
  ARGV[6]  result message JSON ('' when no job id)
  ARGV[7]  result TTL, seconds
  ARGV[8]  time, epoch ms

  Returns the dead-letter entry id, or 'late'.
]]
--@include helpers.lua

local token = ARGV[1]
local lease = redis.call('HMGET', K.lease(token), 'orgId', 'jobId')
local orgId, leasedJobId = lease[1], lease[2]
if not orgId or (leasedJobId ~= '' and redis.call('GET', K.jobLease(leasedJobId)) ~= token) then
  redis.call('INCR', K.queueLateResults)
  return 'late'
end
local jobId = ARGV[5]
local id = dlq_add(orgId, jobId, ARGV[2], ARGV[3], ARGV[4] == '1', tonumber(ARGV[8]))
if jobId ~= '' and ARGV[6] ~= '' and not is_terminal(redis.call('GET', K.jobStatus(jobId))) then
  record_outcome(jobId, orgId, 'dead', ARGV[6], tonumber(ARGV[7]))
end
end_lease(token, orgId, leasedJobId)
return id

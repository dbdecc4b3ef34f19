--[[
  deadLetterJob: adds a message nobody holds a lease on to an organisation's dead-letter list (control plane,
  tools); leased messages go through buryJob instead.

  Guarantees (one atomic step): the entry, and — for a job id without a terminal status — status 'dead', the
  stored and the published error result are written together.

  KEYS     none (K.dlqEntries, K.dlqIndex, K.orgDlq, K.jobStatus, K.jobResult, K.orgDone, …)
  ARGV[1]  organisation id
  ARGV[2]  job id ('' when none)
  ARGV[3]  reason
  ARGV[4]  raw message as stored (possibly truncated)
  ARGV[5]  '1' when ARGV[4] is truncated
  ARGV[6]  result message JSON ('' when no job id)
  ARGV[7]  result TTL, seconds
  ARGV[8]  time, epoch ms

  Returns the entry id.
]]
--@include helpers.lua

local orgId, jobId = ARGV[1], ARGV[2]
local id = dlq_add(orgId, jobId, ARGV[3], ARGV[4], ARGV[5] == '1', tonumber(ARGV[8]))
if jobId ~= '' and ARGV[6] ~= '' and not is_terminal(redis.call('GET', K.jobStatus(jobId))) then
  record_outcome(jobId, orgId, 'dead', ARGV[6], tonumber(ARGV[7]))
end
return id

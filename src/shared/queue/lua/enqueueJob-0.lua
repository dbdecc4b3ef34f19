--[[
  enqueueJob: the control plane's push. Same list and order as a plain `LPUSH sri:org:{orgId}:jobs`, plus status
  'queued' and the organisation registered for the workers, in one step.

  KEYS     none (K.orgJobs, K.jobStatus, K.orgs, K.queueRing, K.queueRingMembers)
  ARGV[1]  organisation id
  ARGV[2]  job id
  ARGV[3]  job message JSON

  Returns the queue length, or 0 when the job id already has a status (the same push sent again after a lost
  reply, or a job id used twice): the message is not pushed a second time.
]]
--@include helpers.lua

if redis.call('EXISTS', K.jobStatus(ARGV[2])) == 1 then return 0 end
local n = redis.call('LPUSH', K.orgJobs(ARGV[1]), ARGV[3])
redis.call('SET', K.jobStatus(ARGV[2]), 'queued')
redis.call('SADD', K.orgs, ARGV[1])
register_org(ARGV[1])
return n

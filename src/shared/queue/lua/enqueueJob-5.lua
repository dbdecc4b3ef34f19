--[[
  enqueueJob: the control plane's push. Same list and order as a plain `LPUSH sri:org:{orgId}:jobs`, plus status
  'queued' and the organisation registered for the workers, in one step.

  KEYS[1]  sri:job:{jobId}:status      string
  KEYS[2]  sri:org:{orgId}:jobs        list, the producer list
  KEYS[3]  sri:orgs                    set, organisations known to the control plane
  KEYS[4]  sri:queue:ring              list
  KEYS[5]  sri:queue:ring:members      set
  ARGV[1]  organisation id
  ARGV[2]  job message JSON

  Returns {Ok, queue length}, or {Duplicate} when the job id already has a status (the same push sent again after
  a lost reply, or a job id used twice): the message is not pushed a second time.
]]
--@include helpers.lua

if redis.call('EXISTS', KEYS[1]) == 1 then return { CODE.Duplicate } end
local n = redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], 'queued')
redis.call('SADD', KEYS[3], ARGV[1])
register_org(KEYS[4], KEYS[5], ARGV[1])
return { CODE.Ok, n }

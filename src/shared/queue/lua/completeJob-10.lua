--[[
  completeJob: records a job's terminal outcome (done, failed, cancelled, dead without dead-letter entry).

  Guarantees (one atomic step): the first outcome wins. The outcome is recorded only while the take token still
  holds the job's lease and the job has no terminal status yet; otherwise nothing is written but the late-results
  counter (and the end of a lease the token still had). Status, stored result, published result and the end of
  the lease always agree.

  KEYS[1]   sri:lease:{token}               hash, the lease record
  KEYS[2]   sri:lease:{token}:message       list, the leased message
  KEYS[3]   sri:queue:leases                sorted set, take token → deadline
  KEYS[4]   sri:queue:leased-by-org         hash, organisation → leases
  KEYS[5]   sri:queue:job-leases            hash, job id → take token
  KEYS[6]   sri:queue:late-results          string, counter of refused outcomes
  KEYS[7]   sri:job:{jobId}:status          string
  KEYS[8]   sri:job:{jobId}:result          string, TTL ARGV[5]
  KEYS[9]   sri:job:{jobId}:cancel          string, deleted with the lease
  KEYS[10]  sri:worker:{workerId}:stats     hash, counts the job when ARGV[7] is '1'
  ARGV[1]   take token
  ARGV[2]   job id (the lease's; KEYS[7..9] are its keys)
  ARGV[3]   terminal status
  ARGV[4]   result message JSON
  ARGV[5]   result TTL, seconds
  ARGV[6]   the organisation's result channel (sri:org:{orgId}:done)
  ARGV[7]   '1' to count the job in KEYS[10] when it is recorded, '0' not to
  ARGV[8]   the job's duration, ms (with ARGV[7])
  ARGV[9]   when it finished, epoch ms (with ARGV[7])

  Returns {Ok} (recorded) or {Late}.
]]
--@include helpers.lua
--@include complete.lua

return { complete(complete_keys(1), ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7] == '1',
  tonumber(ARGV[8]) or 0, ARGV[9]) }

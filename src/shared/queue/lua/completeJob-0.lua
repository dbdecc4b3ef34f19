--[[
  completeJob: records a job's terminal outcome (done, failed, cancelled, dead without dead-letter entry).

  Guarantees (one atomic step): the first outcome wins. The outcome is recorded only while the take token still
  holds the job's lease and the job has no terminal status yet; otherwise nothing is written but the late-results
  counter. Status, stored result, published result and the end of the lease always agree.

  KEYS     none (K.lease, K.jobLease, K.jobStatus, K.jobResult, K.orgDone, K.queueLateResults, …)
  ARGV[1]  take token
  ARGV[2]  terminal status
  ARGV[3]  result message JSON
  ARGV[4]  result TTL, seconds
  ARGV[5]  worker id whose counters (sri:worker:{id}:stats) count the job when recorded; '' for none
  ARGV[6]  the job's duration, ms (with ARGV[5])
  ARGV[7]  when it finished, epoch ms (with ARGV[5])

  Returns 'recorded' or 'late'.
]]
--@include helpers.lua
--@include complete.lua

return complete(ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5] or '', tonumber(ARGV[6]) or 0, ARGV[7] or '')

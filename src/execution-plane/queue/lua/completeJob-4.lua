--[[
  completeJob: records a job's end and tells its organisation.

  Guarantees (one atomic step): the final status, the stored result and the published result always agree, and
  the job leaves the worker's active hash in the same step — a crash can never leave a job 'done' but still
  held, or held but with its result published. The stored result (with TTL) lets a control plane that was not
  subscribed when PUBLISH ran reconcile later.
  Room for leases (issue 3): this is where a check "the take token is still ours" will go.

  KEYS[1]  sri:job:{jobId}:status        set to ARGV[1]
  KEYS[2]  sri:job:{jobId}:result        the result message JSON, expires after ARGV[3] seconds
  KEYS[3]  sri:worker:{workerId}:active  the take token ARGV[4] is removed from it
  KEYS[4]  sri:org:{orgId}:done          pub/sub channel the result message is published on
  ARGV[1]  final status ('done' | 'failed')
  ARGV[2]  result message JSON
  ARGV[3]  result TTL in seconds
  ARGV[4]  take token

  Returns the number of subscribers that received the result.
]]
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2], 'EX', tonumber(ARGV[3]))
redis.call('HDEL', KEYS[3], ARGV[4])
return redis.call('PUBLISH', KEYS[4], ARGV[2])

--[[
  markWaiting: a running job's hand-off (src/shared/handoff.ts) — its status becomes 'waiting_for_user' while a person
  answers in the live view, and 'running' again when the wait ends; with ARGV[5], the message announcing the wait is
  published on the organisation's result channel in the same step (the control plane records the status and sends
  the job.waiting_for_user webhook).

  Guarantees (one atomic step): the status changes, and the message goes out, only while the take token still holds
  the job's lease and the job has no terminal status; the lease itself is untouched (the worker keeps renewing it
  while the job waits, so a waiting job is never recovered as a dead worker's).

  KEYS[1]  sri:job:{jobId}:status     string
  KEYS[2]  sri:queue:job-leases       hash, job id → take token
  ARGV[1]  job id
  ARGV[2]  take token
  ARGV[3]  the new status: 'waiting_for_user' or 'running'
  ARGV[4]  the organisation's result channel (sri:org:{orgId}:done)
  ARGV[5]  the message to publish there ('' = none)

  Returns {Ok} or {Late} (the lease is gone, or the job already has an outcome).
]]
--@include helpers.lua

if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return { CODE.Late } end
if is_terminal(redis.call('GET', KEYS[1])) then return { CODE.Late } end
if ARGV[3] ~= 'waiting_for_user' and ARGV[3] ~= 'running' then return redis.error_reply('markWaiting: bad status') end
redis.call('SET', KEYS[1], ARGV[3])
if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return { CODE.Ok }

--[[
  startJob: marks a just-taken job 'running'. The queue sends it on the take's connection with its next script call,
  or at the end of the event loop's turn if none comes, so always before any later call about the job: the status
  key belongs to the job, which the take learns only when it pops the message, so the take cannot carry it in its
  KEYS.

  Guarantees (one atomic step): the status changes only while the take token still holds the job's lease; a job
  whose lease already ended (finished, released, recovered) keeps the status that ending gave it. Until this runs,
  the job reads 'queued' (or its earlier terminal status, when a finished job id was pushed again) although leased;
  cancel, complete and recovery go by the lease index, not by the status, so none of them is misled meanwhile.

  KEYS[1]  sri:job:{jobId}:status     string
  KEYS[2]  sri:queue:job-leases       hash, job id → take token
  ARGV[1]  job id
  ARGV[2]  take token

  Returns {Ok} or {Late} (the lease is gone).
]]
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return { CODE.Late } end
-- A finished job id pushed again runs again (the README's "change one character and push again"); with
-- REQUIRE_JOB_SIGNATURE the worker refuses it as a replay (keys.jobFinished) instead.
redis.call('SET', KEYS[1], 'running')
return { CODE.Ok }

--[[
  takeJob: leases the next job to one worker, fairly across organisations.

  Guarantees (one atomic step, so a job is always in exactly one place: a queue list, a lease, or finished):
  - organisations are served round-robin across ALL workers: the ring of organisation ids (sri:queue:ring) is
    rotated here, one position per organisation looked at, so the organisation served last waits for every
    other one; a busy organisation delays another's job by at most one take;
  - an organisation over its quota (sri:org:{orgId}:quota maxConcurrent / perMinute, read on every take) is
    skipped: its jobs wait, nothing is dropped or failed;
  - a bounded batch (ARGV[5] messages, at most 4 MiB) moves from the producer list (LPUSH) into the ready lists,
    high priority apart, oldest first; ready lists are taken before the producer list, high before normal;
  - jobs cancelled while queued are dropped here (their result was published by cancelJob);
  - the lease (token → deadline in sri:queue:leases, record sri:lease:{token}, index sri:job:{jobId}:lease) and
    status 'running' are written together with the pop; the message is returned byte for byte as pushed;
  - status and lease index are written only for a message whose jobId is a plain id and whose orgId is the
    queue's organisation; other messages are still leased (under no job id) so the worker can dead-letter them.

  KEYS     none: every key is built from the generated table K (src/shared/keys.ts) at run time.
  ARGV[1]  take token (unique per take)
  ARGV[2]  worker id
  ARGV[3]  lease duration, ms
  ARGV[4]  largest message decoded, bytes (larger ones are leased undecoded and dead-lettered by the worker)
  ARGV[5]  how many messages one take moves from the producer list into the ready lists

  Returns {orgId, raw, jobId or '', attempt, leaseDeadline, recovered (1 when the attempt number comes from a
  recovered lease, 0 otherwise)} or false when no organisation has a takeable job. Idempotent per token: a
  take resent with the same token (lost reply) returns the lease it made the first time.
]]
--@include helpers.lua
--@include take.lua

return take(ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))

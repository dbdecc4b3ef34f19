--[[
  takeJob: leases the next job to one worker, fairly across organisations.

  Guarantees (one atomic step, so a job is always in exactly one place: a queue list, a lease, or finished):
  - organisations are served round-robin across ALL workers: the ring (sri:queue:ring) of the organisations that
    may have waiting jobs is rotated here, one position per organisation looked at, so the organisation served
    last waits for every other one; a busy organisation delays another's job by at most one take;
  - an organisation looked at with nothing waiting leaves the ring (enqueue, release, recovery, promotion and the
    workers' discovery put it back), so the ring holds the organisations with work, however many are registered;
  - an organisation over its quota (maxConcurrent / perMinute of sri:org:{orgId}:quota, which the caller reads —
    a script's KEYS need write access, and workers may only read quotas — and passes in ARGV) is skipped: its jobs
    wait, nothing is dropped or failed;
  - a bounded batch (ARGV[5] messages, at most 4 MiB) moves from the producer list (LPUSH) into the ready lists,
    high priority apart, oldest first; ready lists are taken before the producer list, high before normal;
  - jobs cancelled while they waited (sri:queue:cancelled) are dropped here (cancelJob published their result);
  - one run at a time per portal account: a job whose account (organisation, user, provider: the session it uses)
    already has as many leases as the job's maxConcurrentPerAccount (1 when absent) is not leased but parked
    (sri:queue:parked, sri:queue:parked:jobs), holding no lease and no worker slot; the take goes on with the
    organisation's next job. A parked job is taken before the organisation's other jobs (high priority first)
    as soon as its account has room: the lease that held the account released it (end_lease, in every step
    that ends a lease, recovery of a dead worker's included). The lease records its account, counted in
    sri:queue:leased-by-org under `<orgId>/<userId>/<providerName>`. An organisation with parked jobs stays in
    the ring;
  - the lease (token → deadline in sri:queue:leases, record sri:lease:{token}, job → token in
    sri:queue:job-leases) is written together with the pop; the message is returned byte for byte as pushed.
    The job's status becomes 'running' in startJob-2.lua, which the queue sends after this reply: the status key
    is the job's own and the job is known only now, so it cannot be among this call's KEYS;
  - a job id and lease index are recorded only for a message whose jobId is a plain id and whose orgId is the
    queue's organisation; other messages are still leased (under no job id) so the worker can dead-letter them.

  Which organisations' keys to pass: the caller keeps the ring's order from earlier replies and passes the next
  ones (all of them when the ring is short). When the rotation reaches an organisation it was not given, nothing
  of that organisation is touched: the reply is RingMiss with the ring's next ARGV[6] organisations, and the
  caller calls again with those (the transition stays atomic; only the call is repeated).

  KEYS[1]   sri:queue:ring                  list, the organisations with work, rotated (RPOPLPUSH)
  KEYS[2]   sri:queue:ring:members          set, the ring's members
  KEYS[3]   sri:queue:leases                sorted set, take token → lease deadline
  KEYS[4]   sri:queue:leased-by-org         hash, organisation → leases it holds now; account → leases holding it
  KEYS[5]   sri:queue:job-leases            hash, job id → take token
  KEYS[6]   sri:queue:attempts              hash, job id → attempt of its next take (after a recovered lease)
  KEYS[7]   sri:queue:cancelled             set, job ids cancelled while they waited
  KEYS[8]   sri:queue:rate                  hash, organisation → `<minute>:<jobs taken in it>`
  KEYS[9]   sri:lease:{token}               hash, the lease record written here
  KEYS[10]  sri:lease:{token}:message       list, the leased message (moved here)
  KEYS[11]  sri:queue:parked                sorted set (lex), parked jobs: `<account>\t<seq>\t<limit>\t<h|n>`
  KEYS[12]  sri:queue:parked:jobs           hash, parked job → its message; field `seq` numbers the parks
  KEYS[13…] per organisation of ARGV[7…], three keys each, in the same order:
            sri:org:{orgId}:jobs, sri:org:{orgId}:ready:high, sri:org:{orgId}:ready:normal
  ARGV[1]   take token (unique per take)
  ARGV[2]   worker id
  ARGV[3]   lease duration, ms
  ARGV[4]   largest message decoded, bytes (larger ones are leased undecoded and dead-lettered by the worker)
  ARGV[5]   how many messages one take moves from the producer list into the ready lists
  ARGV[6]   how many organisations a RingMiss reply names
  ARGV[7…]  per organisation whose keys KEYS[13…] are: its id, its maxConcurrent and its perMinute ('' = no limit)

  Returns {Ok, orgId, raw, jobId or '', attempt, leaseDeadline, recovered (1 when the attempt number comes from a
  recovered lease)}, {Nothing} when no organisation has a takeable job, or {RingMiss, ring length, orgId…}.
  Idempotent per token: a take resent with the same token (lost reply) returns the lease it made the first time.
]]
--@include helpers.lua
--@include take.lua

local T, orgs = take_keys(1, { unpack(ARGV, 7) })
return take(T, orgs, ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]))

--[[
  completeAndTakeJob: a worker's slot finishing one job and taking its next in one round trip (the worker's
  normal path; BullMQ's moveToFinished does the same). Exactly completeJob followed by takeJob, atomically: the
  completion's guarantees (first outcome wins, late results counted) and the take's (fair round-robin, quotas,
  priority, one run at a time per portal account, leases, idempotent per take token, RingMiss when the ring
  reaches an organisation not passed) are
  those of the two scripts. A RingMiss of the take does not undo the completion: the caller completes nothing
  twice, it only takes again (takeJob) with the organisations the reply names.

  KEYS[1..10]   completeJob-10.lua's KEYS[1..10], for the finished job's token and id; the take uses its
                sri:queue:leases (KEYS[3]), sri:queue:leased-by-org (KEYS[4]) and sri:queue:job-leases (KEYS[5]) too
  KEYS[11..19]  takeJob-12.lua's other fixed keys, for the next take's token: sri:queue:ring, sri:queue:ring:members,
                sri:queue:attempts, sri:queue:cancelled, sri:queue:rate, sri:lease:{token}, sri:lease:{token}:message,
                sri:queue:parked, sri:queue:parked:jobs
  KEYS[20…]     takeJob-12.lua's KEYS[13…]: three keys per organisation of ARGV[16…]
  ARGV[1..9]    completeJob-10.lua's ARGV[1..9]
  ARGV[10..15]  takeJob-12.lua's ARGV[1..6] (next take token, worker id, lease ms, largest decoded message, refill
                batch, RingMiss window)
  ARGV[16…]     takeJob-12.lua's ARGV[7…]: id, maxConcurrent, perMinute of each organisation whose keys KEYS[18…] are

  Returns {completion code (Ok or Late), the take's reply}.
]]
--@include helpers.lua
--@include complete.lua
--@include take.lua

local C = complete_keys(1)
local done = complete(C, ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7] == '1',
  tonumber(ARGV[8]) or 0, ARGV[9])
local T, orgs = take_keys(COMPLETE_KEYS + 1, { unpack(ARGV, 16) }, C)
return { done, take(T, orgs, ARGV[10], ARGV[11], tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15])) }

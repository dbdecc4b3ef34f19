--[[
  promoteDeferred: moves one deferred job (deferJob) whose time has come back to the FRONT of its organisation's
  queue, where the next take meets it with its attempt unchanged.

  Guarantees (one atomic step): a due job leaves sri:queue:deferred in the same step as its message enters its
  ready list (the organisation back in the ring); a job cancelled while it waited (status no longer 'queued', or
  the cancel flag) is dropped instead, and its entry in sri:queue:cancelled with it. The caller found the token
  with readDue and the job in sri:queue:deferred:jobs; both are checked again here (Stale when the entry changed
  meanwhile, e.g. another worker promoted it).

  KEYS[1]   sri:queue:deferred               sorted set, take token → due time
  KEYS[2]   sri:queue:deferred:jobs          hash, take token → {"o","j","w"}
  KEYS[3]   sri:lease:{token}:message        list, the waiting message
  KEYS[4]   sri:job:{jobId}:status           string
  KEYS[5]   sri:job:{jobId}:cancel           string
  KEYS[6]   sri:org:{orgId}:ready:high       list
  KEYS[7]   sri:org:{orgId}:ready:normal     list
  KEYS[8]   sri:queue:ring                   list
  KEYS[9]   sri:queue:ring:members           set
  KEYS[10]  sri:queue:cancelled              set, jobs cancelled while they waited
  ARGV[1]   take token
  ARGV[2]   organisation id
  ARGV[3]   job id
  ARGV[4]   now, epoch ms (readDue's)

  Returns {Ok} (promoted), {Dropped} (cancelled meanwhile, or no entry) or {Stale}.
]]
--@include helpers.lua

local d, answer = claim_due(KEYS[1], KEYS[2], ARGV[1], ARGV[4], ARGV[2], ARGV[3])
if not d then return answer end
if redis.call('EXISTS', KEYS[5]) == 1 or redis.call('GET', KEYS[4]) ~= 'queued' then
  -- cancelled while it waited: cancelJob took it for a queued job in a list, which only the take would meet
  redis.call('SREM', KEYS[10], ARGV[3])
  redis.call('DEL', KEYS[3])
  return { CODE.Dropped }
end
message_to_front(KEYS[3], KEYS[6], KEYS[7], redis.call('LINDEX', KEYS[3], 0))
register_org(KEYS[8], KEYS[9], ARGV[2])
return { CODE.Ok }

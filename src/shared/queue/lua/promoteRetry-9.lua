--[[
  promoteRetry: moves one retry whose time has come back to the FRONT of its organisation's queue.

  Guarantees (one atomic step): a due retry leaves the delayed set in the same step as its message enters its
  ready list (status 'queued', the organisation back in the ring); a job cancelled while it waited is dropped
  instead. The caller found the token with readDue and the job in sri:queue:delayed:jobs; both are checked again
  here (Stale when the entry changed meanwhile, e.g. another worker promoted it).

  KEYS[1]  sri:queue:delayed                sorted set, take token → due time
  KEYS[2]  sri:queue:delayed:jobs           hash, take token → {"o","j","e"} (a release before v4 also kept "r")
  KEYS[3]  sri:lease:{token}:message        list, the waiting message
  KEYS[4]  sri:job:{jobId}:status           string
  KEYS[5]  sri:job:{jobId}:cancel           string
  KEYS[6]  sri:org:{orgId}:ready:high       list
  KEYS[7]  sri:org:{orgId}:ready:normal     list
  KEYS[8]  sri:queue:ring                   list
  KEYS[9]  sri:queue:ring:members           set
  ARGV[1]  take token
  ARGV[2]  organisation id
  ARGV[3]  job id
  ARGV[4]  now, epoch ms (readDue's)

  Returns {Ok} (promoted), {Dropped} (cancelled meanwhile, or no entry) or {Stale}.
]]
--@include helpers.lua

-- (a due time without its entry is a half-written retry of an old release: nothing to promote)
local d, answer = claim_due(KEYS[1], KEYS[2], ARGV[1], ARGV[4], ARGV[2], ARGV[3])
if not d then return answer end
if redis.call('EXISTS', KEYS[5]) == 1 or redis.call('GET', KEYS[4]) ~= 'retrying' then
  redis.call('DEL', KEYS[3])
  return { CODE.Dropped }
end
if type(d['r']) == 'string' then
  push_front(KEYS[6], KEYS[7], d['r'])
  redis.call('DEL', KEYS[3])
else
  message_to_front(KEYS[3], KEYS[6], KEYS[7], redis.call('LINDEX', KEYS[3], 0))
end
register_org(KEYS[8], KEYS[9], ARGV[2])
redis.call('SET', KEYS[4], 'queued')
return { CODE.Ok }

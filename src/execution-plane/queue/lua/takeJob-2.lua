--[[
  takeJob: hands the oldest job of one organisation's queue to one worker.

  Guarantees (one atomic step, so no job is ever held by nobody):
  - the message leaves the queue only together with being recorded in the worker's active hash under a take
    token unique to this take; a later release (leases, issue 3) can find and hand back what a dead worker held;
  - the job's status becomes 'running' only when the message decodes to a table whose jobId is a plain id and
    whose orgId is the queue's organisation — a message pushed into another organisation's queue cannot touch
    that organisation's status keys;
  - the message is returned byte for byte as it was pushed; validation happens in the worker.

  KEYS[1]  sri:org:{orgId}:jobs          the organisation's queue (producers LPUSH, we RPOP: oldest first)
  KEYS[2]  sri:worker:{workerId}:active  hash take token -> raw message
  ARGV[1]  take token (unique per take)
  ARGV[2]  organisation id of KEYS[1]
  ARGV[3]  status key prefix ("sri:job:")   the status key is prefix .. jobId .. suffix (keys.jobStatus); it is
  ARGV[4]  status key suffix (":status")    built here because the job id is known only after the pop

  Returns the raw message, or false (nil reply) when the queue is empty.
]]
local raw = redis.call('RPOP', KEYS[1])
if not raw then
  return false
end
redis.call('HSET', KEYS[2], ARGV[1], raw)

local ok, msg = pcall(cjson.decode, raw)
if ok and type(msg) == 'table' then
  local jobId = msg['jobId']
  if type(jobId) == 'string' and msg['orgId'] == ARGV[2] and string.len(jobId) <= 128
      and string.match(jobId, '^[%w_.%-]+$') and jobId ~= '.' and jobId ~= '..' then
    redis.call('SET', ARGV[3] .. jobId .. ARGV[4], 'running')
  end
end
return raw

--[[
  recordJob: adds one finished job to the worker's counters.

  Guarantees (one atomic step): totalJobs, the success/failure counters and averageDuration always agree, even
  with several jobs of one worker finishing at once.

  KEYS[1]  sri:worker:{workerId}:stats   hash workerId, startedAt, totalJobs, successfulJobs, failedJobs,
                                         averageDuration, lastJobAt (+ totalDuration, the sum behind the average)
  ARGV[1]  '1' when the job succeeded, '0' when it failed
  ARGV[2]  the job's duration in ms (integer)
  ARGV[3]  when it finished, epoch ms

  Returns {Ok, the new averageDuration}.
]]
local total = redis.call('HINCRBY', KEYS[1], 'totalJobs', 1)
if ARGV[1] == '1' then
  redis.call('HINCRBY', KEYS[1], 'successfulJobs', 1)
else
  redis.call('HINCRBY', KEYS[1], 'failedJobs', 1)
end
local sum = redis.call('HINCRBY', KEYS[1], 'totalDuration', tonumber(ARGV[2]))
local avg = math.floor(sum / total)
redis.call('HSET', KEYS[1], 'averageDuration', avg, 'lastJobAt', ARGV[3])
return { CODE.Ok, avg }

--[[
  hitRunLimits: counts one run against its organisation's and its user's rate limit (fixed windows).

  Guarantees (one atomic step): however many API processes start runs at once, each run is counted exactly once in
  both windows, and a window starts at the first run counted in it (a run never stretches it). A refused run is
  counted too, so a client that keeps hammering stays refused until the window ends.

  KEYS[1]  sri:ratelimit:run:org:{orgId}    string counter, TTL = the window (set at its first run)
  KEYS[2]  sri:ratelimit:run:user:{userId}  string counter, TTL = the window
  ARGV[1]  window, ms

  Returns { runs of the organisation in its window, ms left of it, runs of the user in its window, ms left of it }.
]]
local function hit(key)
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
  local ttl = redis.call('PTTL', key)
  -- A counter left without a TTL (an INCR by hand) would refuse forever: give it the window again.
  if ttl < 0 then
    redis.call('PEXPIRE', key, ARGV[1])
    ttl = tonumber(ARGV[1])
  end
  return n, ttl
end
local orgRuns, orgTtl = hit(KEYS[1])
local userRuns, userTtl = hit(KEYS[2])
return { orgRuns, orgTtl, userRuns, userTtl }

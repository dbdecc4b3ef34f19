--[[
  passGate: may a job of this provider start now? Asked by a worker after it took the job and before it opens a
  browser (src/shared/provider-gate/gate.ts, docs/providers.md). One atomic step, on Redis's clock, shared by every
  worker and organisation:
  1. circuit breaker: open and its cool-down not over → wait until it is over. Open and over → half-open. Half-open
     with a probe job still trying (another job, before probeUntil) → wait for it;
  2. requests-per-minute ceiling: the minute's browser requests of the provider (KEYS[2]) reached it → wait for the
     next minute;
  3. spacing: before nextStartAt → wait until then.
  Only when all three pass is anything written: nextStartAt = now + minSpacingMs + the jitter drawn by the caller,
  and, half-open, this job becomes the probe until probeUntil (a probe that dies lets the next job try after that).
  (Maintenance windows need no shared state: the caller computes them from the catalogue before asking.)

  KEYS[1]  sri:provider-gate:{name}                 hash, nextStartAt and the breaker's fields
  KEYS[2]  sri:provider-gate:{name}:rpm:{minute}    string, counter of the current minute's requests
  ARGV[1]  job id
  ARGV[2]  minSpacingMs + jitter drawn for this start (0: no spacing)
  ARGV[3]  requestsPerMinute ('' = none)
  ARGV[4]  end of the current clock minute, epoch ms (the caller's clock, which named KEYS[2])
  ARGV[5]  breaker on: '1' or '0'
  ARGV[6]  how long a half-open probe holds the others back at most, ms (a probe that died lets the next job try then)
  ARGV[7]  how soon a job held back by a probe asks again, ms (the probe's success closes the breaker at any time)

  Returns {1, now, state, previous state} (go: state is the breaker's, 'half_open' when this job is its probe) or
  {0, until, why, state} (wait until `until`, epoch ms; why = 'breaker' | 'rate' | 'spacing').
  Spacing is checked only while the provider has one (ARGV[2] > 0): a spacing removed from the catalogue leaves no
  wait behind.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local jobId = ARGV[1]
local g = redis.call('HMGET', KEYS[1], 'state', 'openUntil', 'probeJob', 'probeUntil', 'nextStartAt')
local state = g[1] or 'closed'
local previous = state
local probing = false
if ARGV[5] == '1' then
  if state == 'open' then
    local untilMs = tonumber(g[2]) or 0
    if now < untilMs then return { 0, untilMs, 'breaker', state } end
    state = 'half_open'
  end
  if state == 'half_open' then
    local probe, probeUntil = g[3] or '', tonumber(g[4]) or 0
    if probe ~= '' and probe ~= jobId and now < probeUntil then
      return { 0, math.min(probeUntil, now + tonumber(ARGV[7])), 'breaker', state }
    end
    probing = true
  end
end
if ARGV[3] ~= '' then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
  if used >= tonumber(ARGV[3]) then return { 0, tonumber(ARGV[4]), 'rate', state } end
end
local spacing = tonumber(ARGV[2]) or 0
if spacing > 0 then
  local nextStart = tonumber(g[5]) or 0
  if now < nextStart then return { 0, nextStart, 'spacing', state } end
  redis.call('HSET', KEYS[1], 'nextStartAt', now + spacing)
end
if probing then
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probeJob', jobId, 'probeUntil', now + tonumber(ARGV[6]), 'changedAt', now)
end
return { 1, now, state, previous }

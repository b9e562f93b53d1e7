-- handoff.lua: a send task is done with its slot; the next part in line gets the next.
-- The lock is released (if still this task's); an answered send moves the rate on
-- (the next send starts one interval after this answer at the earliest, so the
-- platform never sees two sends closer than an interval however the network delays
-- them); an accepted one is kept as evidence, ends a rate-limit streak and counts
-- toward a run at the account's pace. Parts offered here (the message's next part,
-- or this one waiting again) join the line before the next slot is reserved.
-- KEYS: as line.lua.
-- ARGV[1] lock token ("" when this task held none)
-- ARGV[2] 1 if the platform was called (its answer, or no answer) else 0
-- ARGV[3] 1 if the send was accepted else 0
-- ARGV[4] interval ms (of the rate in force)   ARGV[5] burst tolerance ms
-- ARGV[6] grace ms   ARGV[7] keep ms (the line's TTL)
-- ARGV[8] evidence horizon ms   ARGV[9] most accepted sends kept as evidence
-- ARGV[10] at-pace ms: an accepted send answered within this of the previous answer
--          counts toward the run
-- ARGV[11] count n of parts offered, then n groups of: ticket, generation, order, due in ms
-- Returns {run, [ticket, generation, in_ms]}: the run's length, and the slot reserved.
local now, t = clock()
local token = ARGV[1]
local interval, tolerance = tonumber(ARGV[4]), tonumber(ARGV[5])
local grace, keep = tonumber(ARGV[6]), tonumber(ARGV[7])
if token ~= '' and redis.call('GET', KEYS[1]) == token then redis.call('DEL', KEYS[1]) end
local run = tonumber(redis.call('GET', KEYS[10]) or '0')
if ARGV[2] == '1' then
  local next_at = tonumber(redis.call('GET', KEYS[3]) or '0')
  if next_at < now then next_at = now end
  next_at = next_at + interval
  redis.call('SET', KEYS[3], next_at, 'PX', next_at - now + interval)
  local previous = tonumber(redis.call('GET', KEYS[11]) or '-1')
  redis.call('SET', KEYS[11], now, 'PX', keep)
  if ARGV[3] == '1' then
    local horizon = tonumber(ARGV[8])
    redis.call('ZADD', KEYS[8], now, t[1] .. '.' .. t[2])
    redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now - horizon)
    redis.call('ZREMRANGEBYRANK', KEYS[8], 0, -tonumber(ARGV[9]) - 1)
    redis.call('PEXPIRE', KEYS[8], horizon)
    redis.call('DEL', KEYS[9], KEYS[13])
    if previous >= 0 and now - previous <= tonumber(ARGV[10]) then
      run = redis.call('INCR', KEYS[10])
      redis.call('PEXPIRE', KEYS[10], keep)
    end
  end
end
local n = tonumber(ARGV[11])
for i = 0, n - 1 do
  local due = now + tonumber(ARGV[15 + 4 * i])
  put(ARGV[12 + 4 * i], tonumber(ARGV[13 + 4 * i]), ARGV[14 + 4 * i], due, now, keep)
end
local pick = dispatch(now, tolerance, grace)
if pick then return {run, pick[1], pick[2], pick[3]} end
return {run}

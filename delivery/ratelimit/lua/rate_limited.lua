-- rate_limited.lua: one more rate-limit verdict in a row; the run at the pace ends.
-- The first of a streak notes when the streak began (``at_ms``, or now): what the
-- account sent before that moment is the evidence of its limit.
-- KEYS: as line.lua.
-- ARGV[1] strikes TTL ms   ARGV[2] when the streak began if earlier than now (ms), or ""
-- Returns {strikes, streak_began_ms}.
local now = clock()
local strikes = redis.call('INCR', KEYS[9])
redis.call('PEXPIRE', KEYS[9], tonumber(ARGV[1]))
redis.call('DEL', KEYS[10])
local began = now
if ARGV[2] ~= '' and tonumber(ARGV[2]) < now then began = tonumber(ARGV[2]) end
redis.call('SET', KEYS[13], began, 'NX', 'PX', tonumber(ARGV[1]))
return {strikes, tonumber(redis.call('GET', KEYS[13]))}

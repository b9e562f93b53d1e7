-- cool_down.lua: start or lengthen the account's cooldown; never shorten it. A slot
-- reserved before it is moved to its end (the part keeps it: one send per cooldown).
-- KEYS: as line.lua.
-- ARGV[1] duration ms   ARGV[2] grace ms
-- Returns the cooldown's time left in ms after the call.
local left = redis.call('PTTL', KEYS[4])
local wanted = tonumber(ARGV[1])
if left < wanted then
  redis.call('SET', KEYS[4], '1', 'PX', wanted)
  left = wanted
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('PEXPIRE', KEYS[2], left + tonumber(ARGV[2]))
end
return left

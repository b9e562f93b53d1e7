-- leave.lua: parts give up their place (final, parked, or no longer their chat's head);
-- a slot one of them held goes to the next in line.
-- KEYS: as line.lua.
-- ARGV[1] burst tolerance ms   ARGV[2] grace ms   ARGV[3..] tickets
-- Returns {ticket, generation, in_ms} of a slot reserved now, or {}.
local now = clock()
local holder = redis.call('GET', KEYS[2])
local who = holder and parse_holder(holder)
for i = 3, #ARGV do
  remove(ARGV[i])
  if ARGV[i] == who then redis.call('DEL', KEYS[2]) end
end
return dispatch(now, tonumber(ARGV[1]), tonumber(ARGV[2])) or {}

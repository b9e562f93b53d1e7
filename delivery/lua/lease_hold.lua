-- lease_hold.lua: take the lease, or renew it if it is ours.
-- KEYS[1] lease key   (holds the holder's identity; PX = the lease's time left)
-- ARGV[1] our identity ("host:pid:random")
-- ARGV[2] ttl ms      (how long the lease lasts from now, on Redis's clock)
-- Returns 1 when we hold it after the call, else 0 (another holds it).
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0

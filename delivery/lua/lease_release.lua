-- lease_release.lua: give the lease up if it is ours (never someone else's).
-- KEYS[1] lease key   (holds the holder's identity)
-- ARGV[1] our identity
-- Returns 1 if released, else 0 (not ours, or already gone).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0

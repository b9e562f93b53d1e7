-- trial_take.lua: use the account's trial pass if it names this chunk.
-- KEYS[1] trial key   (holds the chunk id allowed to try; EX = the pass's TTL)
-- ARGV[1] chunk id
-- Returns 1 if taken (the key is gone: the pass is used up), else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0

"""The Lua scripts of the account gate, each headed by its KEYS/ARGV contract.

They run atomically inside Redis and read the clock with ``TIME``, so every worker
on every host agrees on "now" whatever its own clock says.
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "BUSY", "COOLING", "COOL_DOWN", "GRANTED", "PACED", "RELEASE"]

GRANTED = 0  # the caller holds the lock and a rate slot; send now
COOLING = 1  # the account is in a rate-limit cooldown; wait_ms until it ends
BUSY = 2  # another send of this account is in flight; wait_ms is the lock's time left
PACED = 3  # the account's send rate is spent; wait_ms until the next slot

# ACQUIRE: take the account's send lock and one slot of its rate (GCRA), atomically.
# A caller that must wait for the rate gets a *reservation* of a future slot, so it
# comes back once, at its slot, instead of polling with every other waiter.
# KEYS[1] cooldown key     (exists while cooling down; its PTTL is the time left)
# KEYS[2] lock key         (holds the holder's token)
# KEYS[3] gcra key         (the theoretical arrival time, ms since the epoch)
# KEYS[4] reservation key  (this caller's reserved slot, ms since the epoch)
# ARGV[1] lock token   ARGV[2] lock ttl ms
# ARGV[3] emission interval ms (one send per interval)
# ARGV[4] burst tolerance ms ((burst - 1) * interval)
# ARGV[5] reservation grace ms (how long past its slot a reservation is kept)
# Returns {status, wait_ms}.
ACQUIRE = """
redis.replicate_commands()
local cooling = redis.call('PTTL', KEYS[1])
if cooling > 0 then
  redis.call('DEL', KEYS[4])
  return {1, cooling}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local grace = tonumber(ARGV[5])
local slot = tonumber(redis.call('GET', KEYS[4]) or '-1')
if slot < 0 then
  local interval = tonumber(ARGV[3])
  local tat = tonumber(redis.call('GET', KEYS[3]) or '0')
  if tat < now then tat = now end
  local new_tat = tat + interval
  redis.call('SET', KEYS[3], new_tat, 'PX', new_tat - now + interval)
  slot = tat - tonumber(ARGV[4])
  if slot < now then slot = now end
  redis.call('SET', KEYS[4], slot, 'PX', slot - now + grace)
end
if slot > now then return {3, slot - now} end
local held = redis.call('PTTL', KEYS[2])
if held > 0 then return {2, held} end
if held == -1 then return {2, tonumber(ARGV[2])} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', tonumber(ARGV[2]))
redis.call('DEL', KEYS[4])
return {0, 0}
"""

# RELEASE: drop the lock only if the caller still holds it.
# KEYS[1] lock key   ARGV[1] lock token
# Returns 1 if released, 0 if it had expired or passed to another holder.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# COOL_DOWN: start or lengthen the account's cooldown; never shorten it.
# KEYS[1] cooldown key   ARGV[1] duration ms
# Returns the cooldown's time left in ms after the call.
COOL_DOWN = """
local left = redis.call('PTTL', KEYS[1])
local wanted = tonumber(ARGV[1])
if left < wanted then
  redis.call('SET', KEYS[1], '1', 'PX', wanted)
  return wanted
end
return left
"""

"""The Lua scripts of the account gate, each headed by its KEYS/ARGV contract.

They run atomically inside Redis and read the clock with ``TIME``, so every worker
on every host agrees on "now" whatever its own clock says.
"""

from __future__ import annotations

__all__ = [
    "ACQUIRE",
    "BUSY",
    "COOLING",
    "COOL_DOWN",
    "GRANTED",
    "PACED",
    "PACE_DOWN",
    "PACE_UP",
    "RELEASE",
]

GRANTED = 0  # the caller holds the lock and a rate slot; send now
COOLING = 1  # the account is in a rate-limit cooldown; wait_ms until it ends
BUSY = 2  # another send of this account is in flight; wait_ms is how soon to look again
PACED = 3  # the account's send rate is spent; wait_ms until the next slot

# ACQUIRE: take the account's send lock and one slot of its rate (GCRA), atomically.
# A caller that must wait for the rate gets a *reservation* of a future slot, so it
# comes back once, at its slot, instead of polling with every other waiter. A
# second GCRA on the times sends are actually granted keeps the sends themselves
# at the rate when waiters come back late and bunched: it tolerates half an
# interval of catching up, and a waiter it turns away joins the end of the queue
# (a fresh reservation) rather than waking with every other late waiter.
# KEYS[1] cooldown key     (exists while cooling down; its PTTL is the time left)
# KEYS[2] lock key         (holds the holder's token)
# KEYS[3] gcra key         (theoretical arrival time of reservations, ms since the epoch)
# KEYS[4] reservation key  (this caller's reserved slot, ms since the epoch)
# KEYS[5] pace key         (the learned fraction of the configured rate; absent = 1)
# KEYS[6] sent key         (theoretical arrival time of granted sends, ms)
# ARGV[1] lock token   ARGV[2] lock ttl ms
# ARGV[3] emission interval ms at full pace (one send per interval)
# ARGV[4] burst tolerance ms ((burst - 1) * interval)
# ARGV[5] reservation grace ms (how long past its slot a reservation is kept)
# ARGV[6] busy poll ms (how soon to look again while another send is in flight)
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
local pace = tonumber(redis.call('GET', KEYS[5]) or '1')
local interval = math.ceil(tonumber(ARGV[3]) / pace)
local tolerance = tonumber(ARGV[4])
local grace = tonumber(ARGV[5])

local function reserve(not_before)
  local tat = tonumber(redis.call('GET', KEYS[3]) or '0')
  if tat < now then tat = now end
  local slot = tat - tolerance
  if slot < not_before then slot = not_before end
  local new_tat = math.max(tat, slot) + interval
  redis.call('SET', KEYS[3], new_tat, 'PX', new_tat - now + interval)
  redis.call('SET', KEYS[4], slot, 'PX', slot - now + grace)
  return slot
end

local slot = tonumber(redis.call('GET', KEYS[4]) or '-1')
if slot < 0 then slot = reserve(now) end
if slot > now then return {3, slot - now} end
local held = redis.call('PTTL', KEYS[2])
if held > 0 or held == -1 then
  local poll = tonumber(ARGV[6])
  if held > 0 and held < poll then poll = held end
  return {2, poll}
end
local sent = tonumber(redis.call('GET', KEYS[6]) or '0')
if sent < now then sent = now end
local earliest = sent - tolerance - math.floor(interval / 2)
if earliest > now then
  slot = reserve(earliest)
  return {3, slot - now}
end
redis.call('SET', KEYS[6], sent + interval, 'PX', sent + interval - now + interval)
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

# PACE_DOWN: the first rate-limit answer of a streak: the rate was too high.
# Remember a ceiling just under the pace that tripped, and back off sharply.
# KEYS[1] pace key   KEYS[2] ceiling key
# ARGV[1] back-off factor   ARGV[2] ceiling factor   ARGV[3] least pace
# ARGV[4] memory ms (how long a learned ceiling lasts without another trip)
# Returns the new pace (as a string).
PACE_DOWN = """
local pace = tonumber(redis.call('GET', KEYS[1]) or '1')
local ceiling = tonumber(redis.call('GET', KEYS[2]) or '1')
local tripped = pace * tonumber(ARGV[2])
if tripped < ceiling then ceiling = tripped end
if ceiling < tonumber(ARGV[3]) then ceiling = tonumber(ARGV[3]) end
pace = pace * tonumber(ARGV[1])
if pace < tonumber(ARGV[3]) then pace = tonumber(ARGV[3]) end
redis.call('SET', KEYS[1], tostring(pace), 'PX', ARGV[4])
redis.call('SET', KEYS[2], tostring(ceiling), 'PX', ARGV[4])
return tostring(pace)
"""

# PACE_UP: an accepted send: climb back toward the learned ceiling.
# KEYS[1] pace key   KEYS[2] ceiling key   ARGV[1] step   ARGV[2] memory ms
# Returns the pace after the call (as a string).
PACE_UP = """
local current = redis.call('GET', KEYS[1])
if not current then return '1' end
local ceiling = tonumber(redis.call('GET', KEYS[2]) or '1')
local pace = tonumber(current) + tonumber(ARGV[1])
if pace > ceiling then pace = ceiling end
if pace >= 1 then
  redis.call('DEL', KEYS[1])
  return '1'
end
redis.call('SET', KEYS[1], tostring(pace), 'PX', ARGV[2])
return tostring(pace)
"""

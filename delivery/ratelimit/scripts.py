"""The Lua scripts of the account gate, each headed by its KEYS/ARGV contract.

They run atomically inside Redis and read the clock with ``TIME``, so every worker
on every host agrees on "now" whatever its own clock says.
"""

from __future__ import annotations

__all__ = [
    "ACQUIRE",
    "ANSWERED",
    "BUSY",
    "COOLING",
    "COOL_DOWN",
    "EXPECT",
    "GRANTED",
    "LEAVE",
    "PACED",
    "RELEASE",
]

GRANTED = 0  # the caller holds the lock and a rate slot; send now
COOLING = 1  # the account is in a rate-limit cooldown; wait_ms until it ends
BUSY = 2  # another send of this account is in flight; wait_ms is how soon to look again
PACED = 3  # others go first, or the account's rate is spent; wait_ms until this one's turn

# ACQUIRE: take the account's send lock and one slot of its rate, atomically, in the
# order of the account's *line*.
# The line is a sorted set of the waiters (tickets) by their order key: the next part
# of a started message sorts before every first part, and within each class the older
# message goes first. A second sorted set holds when each waiter is expected back (the
# time it was told, or now while it asks). A waiter goes when no waiter before it in
# the line is expected by the next slot; else it is told when its turn should come
# (the next slot plus, per such waiter, one interval for each send its message still
# needs) and comes back then. A waiter not
# back within the grace after its time leaves the line by itself (its task ended or
# died), so it blocks no one for long.
# The rate is a GCRA on the time the next send may start ("next"): a grant moves it one
# interval on, plus the time sends of the account take to be answered (a moving
# average), and the answer of a send (ANSWERED) moves it to at least one interval
# after the answer, so the platform, which counts a send when it arrives, never sees
# two sends closer than an interval however the network delays them, and waiters are
# told a time that already counts the answer's delay.
# KEYS[1] cooldown key   (exists while cooling down; its PTTL is the time left)
# KEYS[2] lock key       (holds the holder's token)
# KEYS[3] next key       (the time the next send may start, ms since the epoch)
# KEYS[4] line key       (sorted set: ticket -> order key)
# KEYS[5] back key       (sorted set: ticket -> ms when it is expected back)
# KEYS[6] latency key    (moving average of grant -> answer, ms)
# KEYS[7] granted key    (when the send in flight was granted, ms)
# KEYS[8] weight key     (hash: ticket -> sends its message still needs)
# KEYS[9] per-send key   (moving average of the time between grants while others wait, ms)
# KEYS[10] last grant key (when the last send was granted, ms)
# ARGV[1] ticket   ARGV[2] order key (lower goes first)
# ARGV[3] lock token   ARGV[4] lock ttl ms
# ARGV[5] interval ms (one send per interval)   ARGV[6] burst tolerance ms
# ARGV[7] grace ms (how long past its time a waiter keeps its place)
# ARGV[8] busy poll ms (how soon to look again while another send is in flight)
# ARGV[9] look-ahead (waiters further back than this count whether or not they are
#         expected by the next slot)
# ARGV[10] weight (sends this ticket's message still needs, itself included): a
#         waiter's turn is estimated from the weights of those before it
# Returns {status, wait_ms}.
ACQUIRE = """
redis.replicate_commands()
local ticket = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[5])
local grace = tonumber(ARGV[7])
local latency = tonumber(redis.call('GET', KEYS[6]) or '0')
local gone = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now - grace, 'LIMIT', 0, 100)
for _, member in ipairs(gone) do
  redis.call('ZREM', KEYS[4], member)
  redis.call('ZREM', KEYS[5], member)
  redis.call('HDEL', KEYS[8], member)
end
redis.call('ZADD', KEYS[4], ARGV[2], ticket)
redis.call('ZADD', KEYS[5], now, ticket)
redis.call('HSET', KEYS[8], ticket, ARGV[10])
local function wait(status, ms)
  redis.call('ZADD', KEYS[5], now + ms, ticket)
  for i = 4, 5 do redis.call('PEXPIRE', KEYS[i], ms + grace + interval) end
  redis.call('PEXPIRE', KEYS[8], ms + grace + interval)
  return {status, ms}
end
local cooling = redis.call('PTTL', KEYS[1])
if cooling > 0 then return wait(1, cooling) end
local next_at = tonumber(redis.call('GET', KEYS[3]) or '0')
local earliest = next_at - tonumber(ARGV[6])
if earliest < now then earliest = now end
local rank = redis.call('ZRANK', KEYS[4], ticket)
-- a send takes what the rate allows, or what the workers took of late, if longer
local per_send = math.max(interval + latency, tonumber(redis.call('GET', KEYS[9]) or '0'))
-- blocking: the sends needed by those ahead who are here, or back before this
-- waiter's turn would come; before: the sends needed by everyone ahead (the nearest
-- 1000 weighed one by one, any further back at their average), for its wait
local blocking, before = 0, 0
if rank > 0 then
  local seen = math.min(rank, 1000)
  local members = redis.call('ZRANGE', KEYS[4], 0, seen - 1)
  local weights = redis.call('HMGET', KEYS[8], unpack(members))
  for i, member in ipairs(members) do
    local weight = tonumber(weights[i]) or 1
    before = before + weight
    local counts = i > tonumber(ARGV[9])
    if not counts then
      local back = tonumber(redis.call('ZSCORE', KEYS[5], member) or '0')
      counts = back <= earliest + (blocking + 1) * per_send
    end
    if counts then blocking = blocking + weight end
  end
  before = before + (rank - seen) * before / seen
end
if blocking > 0 then
  -- near the front, come back when those here are done; further back, at its turn
  local sends = blocking
  if rank > tonumber(ARGV[9]) then sends = before end
  return wait(3, earliest - now + sends * per_send)
end
if earliest > now then return wait(3, earliest - now) end
local held = redis.call('PTTL', KEYS[2])
if held > 0 or held == -1 then
  local poll = tonumber(ARGV[8])
  if held > 0 and held < poll then poll = held end
  return wait(2, poll)
end
if next_at < now then next_at = now end
next_at = next_at + interval + latency
redis.call('SET', KEYS[3], next_at, 'PX', next_at - now + interval)
-- with others waiting, the time since the last grant is what one send takes
local previous = tonumber(redis.call('GET', KEYS[10]) or '-1')
if previous >= 0 and rank == 0 and redis.call('ZCARD', KEYS[4]) > 1 then
  local took = now - previous
  local average = tonumber(redis.call('GET', KEYS[9]) or took)
  redis.call('SET', KEYS[9], math.floor(0.7 * average + 0.3 * took), 'PX', 3600000)
end
redis.call('SET', KEYS[10], now, 'PX', 3600000)
redis.call('SET', KEYS[2], ARGV[3], 'PX', tonumber(ARGV[4]))
redis.call('SET', KEYS[7], now, 'PX', tonumber(ARGV[4]))
redis.call('ZREM', KEYS[4], ticket)
redis.call('ZREM', KEYS[5], ticket)
redis.call('HDEL', KEYS[8], ticket)
return {0, 0}
"""

# EXPECT: a waiter to come: the next part of a message just accepted, due after its
# gap. It takes its place in the line now, so that first parts do not take the slot
# it is coming for.
# KEYS[1] line key   KEYS[2] back key   KEYS[3] weight key
# ARGV[1] ticket   ARGV[2] order key   ARGV[3] ms until it comes   ARGV[4] ttl ms
# ARGV[5] weight (sends its message still needs, itself included)
EXPECT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[5])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
return 1
"""

# LEAVE: a waiter gives up its place (its chunk is final, parked or another task's).
# KEYS[1] line key   KEYS[2] back key   KEYS[3] weight key   ARGV[1] ticket
# Returns 1 if it was in the line.
LEAVE = """
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
"""

# ANSWERED: the platform answered a send (or the call ended without an answer).
# The send arrived at the latest now: the next may start one interval after now.
# An accepted send is logged as evidence of what the platform allows, and ends a
# streak of rate-limit answers.
# KEYS[1] next key   KEYS[2] sends key (sorted set of accepted sends' times, ms)
# KEYS[3] strikes key   KEYS[4] latency key   KEYS[5] granted key
# ARGV[1] interval ms   ARGV[2] 1 if accepted else 0
# ARGV[3] evidence horizon ms (older sends are dropped from the log)
# ARGV[4] most sends kept in the log
# Returns the time (ms) the next send may start.
ANSWERED = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local granted = redis.call('GET', KEYS[5])
if granted then
  local took = now - tonumber(granted)
  local average = tonumber(redis.call('GET', KEYS[4]) or took)
  redis.call('SET', KEYS[4], math.floor(0.7 * average + 0.3 * took), 'PX', 3600000)
  redis.call('DEL', KEYS[5])
end
local next_at = tonumber(redis.call('GET', KEYS[1]) or '0')
if next_at < now + interval then
  next_at = now + interval
  redis.call('SET', KEYS[1], next_at, 'PX', 2 * interval)
end
if ARGV[2] == '1' then
  local horizon = tonumber(ARGV[3])
  redis.call('ZADD', KEYS[2], now, t[1] .. '.' .. t[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - horizon)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[4]) - 1)
  redis.call('PEXPIRE', KEYS[2], horizon)
  redis.call('DEL', KEYS[3])
end
return next_at
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

-- line.lua: what every script of the account line shares; prepended to each of them.
--
-- The line of one account: the parts that wait for a send slot, the one part that
-- holds the next slot (a published task), the send in flight, the rate, the
-- cooldown. Nothing here polls: whoever frees the slot (a send's hand-off, a new
-- part offered to an idle line) reserves it for the next part in line and returns
-- it, and the caller publishes that part's task to run at the slot's time.
--
-- KEYS (the same list, in this order, for every line script; one account's keys
-- share a hash tag, so one Redis Cluster slot):
-- KEYS[1]  lock       token of the send in flight (PX = the lock's TTL)
-- KEYS[2]  holder     the reserved slot: "ticket|generation|order|due_ms|slot_ms"
--                     (PX = until the slot, plus the grace a late task is given)
-- KEYS[3]  next       GCRA: when the next send may start (ms), less the burst tolerance
-- KEYS[4]  cooldown   exists while the account cools down (PTTL = time left)
-- KEYS[5]  ready      zset: waiters that are due, by order key (lower goes first)
-- KEYS[6]  later      zset: waiters not due yet, by when they become due (ms)
-- KEYS[7]  waiters    hash: ticket -> "generation|order|due_ms"
-- KEYS[8]  sends      zset: times (ms) of accepted sends, the evidence of the limit
-- KEYS[9]  strikes    consecutive rate-limit verdicts (the streak)
-- KEYS[10] run        accepted sends at the account's pace since the last refusal
-- KEYS[11] answered   when the last send was answered (ms)
-- KEYS[12] suspects   hash of readers held on a bare refusal (delivery.ratelimit.suspects)
-- KEYS[13] streak_at  when the first refusal of the current streak came (ms)
-- KEYS[14] lesson     a lesson of the limit that waits to be proven (delivery.ratelimit.suspects)
--
-- An order key is a decimal string (see gate.order_key); a ticket is a chunk id.

local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), t
end

-- "generation|order|due_ms" -> generation (number), order (string), due (number)
local function parse(meta)
  local gen, order, due = string.match(meta, '^(%-?%d+)|([^|]+)|(%-?%d+)$')
  return tonumber(gen), order, tonumber(due)
end

-- "ticket|generation|order|due_ms|slot_ms"
local function parse_holder(value)
  local ticket, gen, order, due, slot =
    string.match(value, '^([^|]+)|(%-?%d+)|([^|]+)|(%-?%d+)|(%-?%d+)$')
  return ticket, tonumber(gen), order, tonumber(due), tonumber(slot)
end

local function touch(keep)
  for i = 5, 7 do redis.call('PEXPIRE', KEYS[i], keep) end
end

-- Add or update a waiter; an older generation never replaces a newer one.
local function put(ticket, gen, order, due, now, keep)
  local old = redis.call('HGET', KEYS[7], ticket)
  if old then
    local old_gen = parse(old)
    if old_gen > gen then return end
  end
  redis.call('HSET', KEYS[7], ticket, gen .. '|' .. order .. '|' .. due)
  if due <= now then
    redis.call('ZADD', KEYS[5], order, ticket)
    redis.call('ZREM', KEYS[6], ticket)
  else
    redis.call('ZADD', KEYS[6], due, ticket)
    redis.call('ZREM', KEYS[5], ticket)
  end
  touch(keep)
end

local function remove(ticket)
  redis.call('ZREM', KEYS[5], ticket)
  redis.call('ZREM', KEYS[6], ticket)
  redis.call('HDEL', KEYS[7], ticket)
end

-- The earliest a send may start: the rate, and the cooldown if one runs.
local function slot_at(now, tolerance)
  local slot = now
  local allowed = tonumber(redis.call('GET', KEYS[3]) or '0') - tolerance
  if allowed > slot then slot = allowed end
  local cooling = redis.call('PTTL', KEYS[4])
  if cooling > 0 and now + cooling > slot then slot = now + cooling end
  return slot
end

-- Who goes at ``slot``: of the waiters due by then, the first in order; if none is,
-- the one due soonest (its slot is then its due time). Returns ticket, slot.
local function best(slot)
  local due = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', slot)
  for _, ticket in ipairs(due) do
    local meta = redis.call('HGET', KEYS[7], ticket)
    if meta then
      local _, order = parse(meta)
      redis.call('ZADD', KEYS[5], order, ticket)
    end
    redis.call('ZREM', KEYS[6], ticket)
  end
  local first = redis.call('ZRANGE', KEYS[5], 0, 0)[1]
  if first then return first, slot end
  local soonest = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
  if #soonest == 0 then return nil, slot end
  local at = tonumber(soonest[2])
  if at > slot then slot = at end
  return soonest[1], slot
end

-- The slot is ``ticket``'s: it leaves the line and holds the slot until it comes.
local function reserve(ticket, slot, now, grace)
  local meta = redis.call('HGET', KEYS[7], ticket)
  local gen = parse(meta)
  remove(ticket)
  redis.call('SET', KEYS[2], ticket .. '|' .. meta .. '|' .. slot, 'PX', slot - now + grace)
  return {ticket, gen, slot - now}
end

-- Reserve the next slot for the next waiter, unless a send is in flight (its
-- hand-off will) or a slot is reserved already. Returns {ticket, generation, in_ms}.
local function dispatch(now, tolerance, grace)
  if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
    return nil
  end
  local ticket, slot = best(slot_at(now, tolerance))
  if not ticket then return nil end
  return reserve(ticket, slot, now, grace)
end

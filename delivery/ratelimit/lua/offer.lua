-- offer.lua: parts join the account's line (armed: due now or after a gap or backoff);
-- if no send is in flight and no slot is reserved, the next slot is reserved for the
-- first in line. A reserved slot is given up to a part that can go sooner, or that
-- comes first in order when the slot is far enough away to be worth a task's run.
-- KEYS: as line.lua.
-- ARGV[1] burst tolerance ms   ARGV[2] grace ms   ARGV[3] keep ms (the line's TTL)
-- ARGV[4] preempt ms (a reserved slot further away than this may be given up)
-- ARGV[5] count n, then n groups of: ticket, generation, order, due in ms (>= 0)
-- Returns {ticket, generation, in_ms} of a slot reserved now, or {}.
local now = clock()
local tolerance, grace, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local preempt = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
local holder = redis.call('GET', KEYS[2])
local who, holder_gen, holder_order, holder_due, holder_slot
if holder then who, holder_gen, holder_order, holder_due, holder_slot = parse_holder(holder) end
for i = 0, n - 1 do
  local ticket = ARGV[6 + 4 * i]
  local gen = tonumber(ARGV[7 + 4 * i])
  local order = ARGV[8 + 4 * i]
  local due = now + tonumber(ARGV[9 + 4 * i])
  if ticket == who then
    if gen > holder_gen then
      -- the slot's task is stale (its chunk was armed again): the new one waits in line
      redis.call('DEL', KEYS[2])
      holder, who = nil, nil
      put(ticket, gen, order, due, now, keep)
    end
  else
    put(ticket, gen, order, due, now, keep)
  end
end
if holder and redis.call('EXISTS', KEYS[1]) == 0 then
  local ticket, slot = best(slot_at(now, tolerance))
  if ticket then
    local _, order = parse(redis.call('HGET', KEYS[7], ticket))
    local sooner = slot + preempt < holder_slot
    local before = slot <= holder_slot and tonumber(order) < tonumber(holder_order)
      and holder_slot - now > preempt
    if sooner or before then
      redis.call('DEL', KEYS[2])
      put(who, holder_gen, holder_order, holder_due, now, keep)
      return reserve(ticket, slot, now, grace)
    end
  end
  return {}
end
return dispatch(now, tolerance, grace) or {}

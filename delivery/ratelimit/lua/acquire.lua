-- acquire.lua: a send task runs; is the slot its own?
-- KEYS: as line.lua.
-- ARGV[1] ticket (chunk id)   ARGV[2] generation of the task
-- ARGV[3] lock token          ARGV[4] lock TTL ms
-- ARGV[5] early ms (a task this close to its slot may go)
-- ARGV[6] burst tolerance ms  ARGV[7] grace ms (a reserved slot waits this long past
--         its time for its task)   ARGV[8] keep ms (the line's TTL)
-- Returns {status, wait_ms, suspects_held, lesson_pending, [ticket, generation, in_ms]}:
--   0 GRANTED  the caller holds the send lock: send now
--   1 COOLING  the slot is this task's, after the cooldown: come back in wait_ms
--   3 PACED    the slot is this task's, in wait_ms
--   4 QUEUED   another part holds the next slot, or a send is in flight; this part
--              waits in the line (no task needed)
--   5 STALE    the slot or the place in line is this chunk's, for a newer task
--   6 UNKNOWN  not in the line: the caller looks at the ledger and offers it
-- When this call reserved the next slot for another part (nobody held it: its task
-- was lost, or Redis lost a key), that part comes last: publish its task.
local now = clock()
local ticket, gen = ARGV[1], tonumber(ARGV[2])
local early, tolerance, grace = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local held = redis.call('HLEN', KEYS[12])
local lesson = redis.call('EXISTS', KEYS[14])

local function grant()
  redis.call('SET', KEYS[1], ARGV[3], 'PX', tonumber(ARGV[4]))
  redis.call('DEL', KEYS[2])
  return {0, 0, held, lesson}
end

-- The slot is this task's: go now, or come back for it.
local function mine(slot)
  local wait, status = slot - now, 3
  local cooling = redis.call('PTTL', KEYS[4])
  if cooling > wait then wait, status = cooling, 1 end
  if wait > early then
    redis.call('PEXPIRE', KEYS[2], wait + grace)
    return {status, wait, held, lesson}
  end
  return grant()
end

local holder = redis.call('GET', KEYS[2])
if holder then
  local who, holder_gen, _, _, slot = parse_holder(holder)
  if who == ticket then
    if holder_gen > gen then return {5, 0, held, lesson} end
    return mine(slot)
  end
end
local meta = redis.call('HGET', KEYS[7], ticket)
if not meta then return {6, 0, held, lesson} end
local waiting_gen, order, due = parse(meta)
local status = 4
if waiting_gen > gen then
  status = 5
elseif waiting_gen < gen then
  put(ticket, gen, order, due, now, tonumber(ARGV[8]))
end
if holder or redis.call('EXISTS', KEYS[1]) == 1 then return {status, 0, held, lesson} end
-- In the line, and nobody holds the next slot (its task was lost, Redis lost a key):
-- reserve it now.
local pick = dispatch(now, tolerance, grace)
if not pick then return {status, 0, held, lesson} end
if pick[1] == ticket and status == 4 then return mine(now + pick[3]) end
return {status, 0, held, lesson, pick[1], pick[2], pick[3]}

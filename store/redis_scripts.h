// store/redis_scripts.h — the Lua scripts of the Redis backend. Each runs atomically on the
// server, so the steps it combines cannot interleave with another node's. Offsets and epochs
// travel as decimal strings and are compared as such (`above`), because Lua numbers are
// doubles and uint64 values past 2^53 would round. Needs Redis >= 6.2 (XTRIM MINID, "(" IDs).
#pragma once

namespace weir::store::lua {

// KEYS: stream, room hash, epochs zset, rooms set.  ARGV: offset, epoch, payload, stored_ms,
// room. Adds the message as entry "<offset>-1" and keeps the room hash at the newest
// (epoch, offset). The same message already stored under that ID (a batch sent again after a
// lost connection) is not an error: returns 0 instead of 1. Another message there, or an ID
// below the stream's newest, means another node appended to this epoch: the error starts
// with WEIRCONFLICT, and the caller fences (Status::kConflict). The epochs zset scores are
// doubles: epochs past 2^53 would sort approximately (room epochs count restarts, nowhere near).
inline constexpr char kAppend[] = R"lua(
local function above(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local id = ARGV[1] .. '-1'
local added = redis.pcall('XADD', KEYS[1], id, 'p', ARGV[3], 't', ARGV[4])
if type(added) == 'table' and added.err then
  local found = redis.call('XRANGE', KEYS[1], id, id)
  if #found == 1 then
    local fields = found[1][2]
    for i = 1, #fields, 2 do
      if fields[i] == 'p' and fields[i + 1] == ARGV[3] then return 0 end
    end
  end
  if redis.call('EXISTS', KEYS[1]) == 1 then
    return redis.error_reply('WEIRCONFLICT offset ' .. ARGV[1] .. ' of epoch ' .. ARGV[2] ..
                             ' is taken or behind: another node appended to this epoch')
  end
  return added
end
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[5])
local state = redis.call('HMGET', KEYS[2], 'epoch', 'last')
local epoch, last = state[1], state[2]
if not epoch or above(ARGV[2], epoch) or (ARGV[2] == epoch and above(ARGV[1], last)) then
  redis.call('HSET', KEYS[2], 'epoch', ARGV[2], 'last', ARGV[1])
end
return 1
)lua";

// KEYS: epochs zset, room hash, rooms set.  ARGV: room, history key prefix, max messages
// (0: no limit), age cutoff in ms ("": no limit). Trims the room's streams newest epoch
// first: drops entries stored before the cutoff, then keeps at most `max` across all epochs.
// Empty streams are deleted; the room hash follows the newest message left, and a room with
// no history left is forgotten. Builds stream keys from ARGV: standalone Redis only.
inline constexpr char kPurgeRoom[] = R"lua(
local function trim_by_age(stream, cutoff)
  local start = '-'
  while true do
    local batch = redis.call('XRANGE', stream, start, '+', 'COUNT', 128)
    if #batch == 0 then
      redis.call('DEL', stream)
      return
    end
    for _, entry in ipairs(batch) do
      local fields = entry[2]
      for i = 1, #fields, 2 do
        if fields[i] == 't' and tonumber(fields[i + 1]) >= cutoff then
          redis.call('XTRIM', stream, 'MINID', entry[1])
          return
        end
      end
    end
    start = '(' .. batch[#batch][1]
  end
end
local max = tonumber(ARGV[3])
local cutoff = ARGV[4] ~= '' and tonumber(ARGV[4]) or nil
local kept = 0
for _, epoch in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  local stream = ARGV[2] .. epoch
  if cutoff then trim_by_age(stream, cutoff) end
  if max > 0 then
    if kept >= max then
      redis.call('DEL', stream)
    else
      redis.call('XTRIM', stream, 'MAXLEN', max - kept)
    end
  end
  local left = redis.call('XLEN', stream)
  if left == 0 then
    redis.call('DEL', stream)
    redis.call('ZREM', KEYS[1], epoch)
  end
  kept = kept + left
end
local newest = redis.call('ZREVRANGE', KEYS[1], 0, 0)[1]
if not newest then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('SREM', KEYS[3], ARGV[1])
  return 0
end
local top = redis.call('XREVRANGE', ARGV[2] .. newest, '+', '-', 'COUNT', 1)[1]
redis.call('HSET', KEYS[2], 'epoch', newest, 'last', string.match(top[1], '^(%d+)'))
return kept
)lua";

// KEYS: the message id's key.  ARGV: offset, now_ms, window_ms.  SET with NX semantics judged
// at the caller's now_ms (the key also expires by itself after the window): returns the
// original offset when the id was seen less than window_ms ago, else records
// "<offset> <now_ms>" and returns nil.
inline constexpr char kRemember[] = R"lua(
local seen = redis.call('GET', KEYS[1])
if seen then
  local offset, at = string.match(seen, '^(%d+) (%-?%d+)$')
  if offset and tonumber(ARGV[2]) - tonumber(at) < tonumber(ARGV[3]) then return offset end
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'PX', ARGV[3])
return false
)lua";

// KEYS: the bucket.  ARGV: now_ms, interval_ms (1000 / rate), burst, cost.  GCRA over the
// theoretical arrival time kept in the key, the arithmetic of gcra_take() in
// store/memory_backend.h: returns {1, 0} when allowed (TAT advanced), {0, retry_after_ms}
// when not (nothing taken). The key expires once its TAT is past, plus a second of slack.
inline constexpr char kRateTake[] = R"lua(
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = math.max(tonumber(ARGV[3]), 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local new_tat = math.max(tat, now) + tonumber(ARGV[4]) * interval
local excess = new_tat - now - burst * interval
if excess > 1e-6 then return {0, math.ceil(excess - 1e-6)} end
redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX',
           string.format('%d', math.ceil(new_tat - now) + 1000))
return {1, 0}
)lua";

}  // namespace weir::store::lua

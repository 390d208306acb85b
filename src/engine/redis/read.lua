-- What a channel holds from a seq on, for a subscriber's catch-up.
--
-- KEYS[1]  the channel's meta hash (f, n)
-- KEYS[2]  the channel's history stream
-- KEYS[3]  the prefix's seq floor
-- ARGV[1]  the first seq wanted ("0": everything buffered)
-- ARGV[2]  '1' to create the channel's meta if it has none (a subscriber names a
--          channel nobody published to: its first seq is fixed now, as in memory)
-- ARGV[3]  how long the meta of a channel without a message lives after this read
--          (seconds; 0: forever); the first publish sets --channel-ttl instead
--
-- Returns { first, next, now_ms, entries } with first/next as strings ("" when the
-- channel has no meta and none was created) and entries as XRANGE returns them
-- (id "<seq>-0", fields d and t). The caller turns this into data / lost / reset.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local meta = redis.call('HMGET', KEYS[1], 'f', 'n')
local first, nxt = meta[1], meta[2]
if not first then
  if ARGV[2] ~= '1' then
    return { '', '', now_ms, {} }
  end
  local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local floor = tonumber(redis.call('GET', KEYS[3]) or '0')
  first = string.format('%.0f', math.max(now_us, floor, 1))
  nxt = first
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'f', first, 'n', nxt)
  if ARGV[3] ~= '0' then
    redis.call('EXPIRE', KEYS[1], ARGV[3])
  end
elseif first == nxt and ARGV[2] == '1' and ARGV[3] ~= '0' then
  -- Still without a message: subscribers keep it alive this much longer.
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
local entries = redis.call('XRANGE', KEYS[2], ARGV[1] .. '-0', '+')
return { first, nxt, now_ms, entries }

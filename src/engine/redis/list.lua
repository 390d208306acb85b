-- Channels that have had a message, by name (GET /channels?prefix=P&limit=N): costs
-- what it returns (plus the index entries of channels whose keys expired, which it
-- drops on the way).
--
-- KEYS[1]  the prefix's channel index (sorted set of names, all scored 0)
-- ARGV[1]  the name prefix wanted, ARGV[2] at most this many channels,
-- ARGV[3]  the key prefix (--redis-prefix): channel C's meta is <prefix>{C}:m and its
--          history <prefix>{C}:h (standalone Redis: keys outside KEYS are fine here;
--          a cluster keeps one index per shard)
--
-- Returns a flat array: name, next, buffered, name, next, buffered, ... At most 1,000
-- stale entries are dropped per call (publishes drop them too), so one call stays short.
local limit = tonumber(ARGV[2])
local stale = 0
local min = '[' .. ARGV[1]
local max = '[' .. ARGV[1] .. '\255'
local out, found, offset = {}, 0, 0
while found < limit and stale < 1000 do
  local names = redis.call('ZRANGEBYLEX', KEYS[1], min, max, 'LIMIT', offset, limit - found)
  if #names == 0 then
    break
  end
  for _, name in ipairs(names) do
    local nxt = redis.call('HGET', ARGV[3] .. '{' .. name .. '}:m', 'n')
    if nxt then
      out[#out + 1] = name
      out[#out + 1] = nxt
      out[#out + 1] = redis.call('XLEN', ARGV[3] .. '{' .. name .. '}:h')
      found = found + 1
      offset = offset + 1
    else
      -- Expired by --channel-ttl: gone from the index too.
      redis.call('ZREM', KEYS[1], name)
      redis.call('ZREM', KEYS[1] .. ':t', name)
      stale = stale + 1
    end
  end
end
return out

-- Appends one message to a channel and publishes it, in one atomic step.
--
-- KEYS[1]  the channel's meta hash: f = first seq of this life, n = next seq
-- KEYS[2]  the channel's history stream (entry id "<seq>-0", fields d = payload,
--          t = publish time in ms)
-- KEYS[3]  the prefix's seq floor: one past the last seq of any deleted channel
-- ARGV[1]  payload
-- ARGV[2]  --buffer (MAXLEN of the history)
-- ARGV[3]  --channel-ttl in seconds (0: keys never expire)
-- ARGV[4]  the pub/sub channel live messages go to
-- KEYS[4]  the prefix's channel index (sorted set of names, all scored 0, for
--          GET /channels): a channel enters it with the first message of a life
-- KEYS[5]  the index's clock (sorted set: name -> last publish ms), with --channel-ttl
--          only: each publish drops up to 8 channels whose keys expired from both
-- ARGV[5]  the channel's name
-- ARGV[6]  the key prefix (--redis-prefix), to find those channels' meta
--
-- A channel without meta starts a new life at the server's clock in microseconds (and
-- past the floor), so a channel Redis lost comes back with higher seqs and subscribers
-- get `reset`, never a silent gap. Seqs are kept as decimal strings: Lua numbers are
-- doubles, exact to 2^53 (microsecond timestamps are ~2^51), but print in exponent form.
-- Returns the message's seq as a string.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local first = redis.call('HGET', KEYS[1], 'f')
if not first then
  local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local floor = tonumber(redis.call('GET', KEYS[3]) or '0')
  local start = math.max(now_us, floor, 1)
  first = string.format('%.0f', start)
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'f', first, 'n', first)
end
local seq = string.format('%.0f', redis.call('HINCRBY', KEYS[1], 'n', 1) - 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], seq .. '-0', 'd', ARGV[1], 't', now_ms)
if ARGV[3] ~= '0' then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
elseif seq == first then
  -- A subscriber's read created the meta with a short life: a published channel keeps.
  redis.call('PERSIST', KEYS[1])
end
if KEYS[4] then
  if seq == first then
    redis.call('ZADD', KEYS[4], 0, ARGV[5])
  end
  if ARGV[3] ~= '0' then
    redis.call('ZADD', KEYS[5], now_ms, ARGV[5])
    local old = now_ms - tonumber(ARGV[3]) * 1000
    for _, name in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', old, 'LIMIT', 0, 8)) do
      if redis.call('EXISTS', ARGV[6] .. '{' .. name .. '}:m') == 0 then
        redis.call('ZREM', KEYS[4], name)
        redis.call('ZREM', KEYS[5], name)
      else
        redis.call('ZADD', KEYS[5], now_ms, name)
      end
    end
  end
end
redis.call('PUBLISH', ARGV[4], seq .. ':' .. ARGV[1])
return seq

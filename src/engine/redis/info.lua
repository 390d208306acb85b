-- One channel, described (GET /channels/NAME).
--
-- KEYS[1]  the channel's meta hash (f, n), KEYS[2] its history stream
-- ARGV[1]  --message-ttl in ms (0: none); older entries do not count as buffered
--
-- Returns {} if the channel has no meta, else { first, next, oldest, buffered } as
-- strings/integers; oldest is next when nothing is buffered.
local meta = redis.call('HMGET', KEYS[1], 'f', 'n')
if not meta[1] then
  return {}
end
local ttl = tonumber(ARGV[1])
local oldest, buffered = nil, 0
if ttl == 0 then
  buffered = redis.call('XLEN', KEYS[2])
  local head = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  if head[1] then
    oldest = string.match(head[1][1], '^(%d+)')
  end
else
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do
    if now_ms - tonumber(e[2][4]) < ttl then
      buffered = buffered + 1
      oldest = oldest or string.match(e[1], '^(%d+)')
    end
  end
end
return { meta[1], meta[2], oldest or meta[2], buffered }

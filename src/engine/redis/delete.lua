-- Deletes a channel; its next life starts past its seqs.
--
-- KEYS[1]  the channel's meta hash, KEYS[2] its history, KEYS[3] the prefix's floor,
-- KEYS[4]  the prefix's channel index; ARGV[1] the channel's name, ARGV[2] its live
--          pub/sub channel, told "-deleted:<next seq of the deleted life>" so every
--          gateway process closes its subscribers of that life.
-- Returns 1 if the channel existed, 0 otherwise.
local nxt = redis.call('HGET', KEYS[1], 'n')
if not nxt then
  return 0
end
local floor = tonumber(redis.call('GET', KEYS[3]) or '0')
local mine = tonumber(nxt) + 1
if mine > floor then
  redis.call('SET', KEYS[3], string.format('%.0f', mine))
end
redis.call('DEL', KEYS[1], KEYS[2])
if KEYS[4] then
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('ZREM', KEYS[4] .. ':t', ARGV[1])
  redis.call('PUBLISH', ARGV[2], '-deleted:' .. nxt)
end
return 1

-- Deletes a channel; its next life starts past its seqs.
--
-- KEYS[1]  the channel's meta hash, KEYS[2] its history, KEYS[3] the prefix's floor.
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
return 1

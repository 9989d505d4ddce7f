-- state(key|prefix, target, after or '', from or '', limit or '')
--   -> {revision, {key, value, version, ...}, tombstone floor, {key, version, ...},
--       1 when keys after the last one read remain, the last key read}
-- One consistent read: the pairs now (of a prefix, at most limit keys after
-- the key from), and (with after) the deletions after it.
local mode, target, after, from = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local limit = tonumber(ARGV[9])
local keys
if mode == 'key' then keys = {target} else keys = keys_under(target, limit, from) end
local pairs_now = {}
for _, key in ipairs(keys) do
  local hv = redis.call('HMGET', hkey(key), 'value', 'version')
  if hv[1] then
    pairs_now[#pairs_now + 1] = key
    pairs_now[#pairs_now + 1] = hv[1]
    pairs_now[#pairs_now + 1] = hv[2]
  end
end
local deleted = {}
if after ~= '' then
  local buried = redis.call('ZRANGEBYSCORE', TOMB, '(' .. after, '+inf', 'WITHSCORES')
  for j = 1, #buried, 2 do
    local key = buried[j]
    local match
    if mode == 'key' then match = key == target else match = string.sub(key, 1, #target) == target end
    if match then
      deleted[#deleted + 1] = key
      deleted[#deleted + 1] = buried[j + 1]
    end
  end
end
local more, last = 0, ''
if mode ~= 'key' and limit and #keys == limit then more, last = 1, keys[#keys] end
return {redis.call('GET', REV) or '0', pairs_now, redis.call('GET', FLOOR) or '0', deleted, more, last}

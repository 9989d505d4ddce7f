-- delete_range(prefix, limit) -> how many keys it went through (at most
-- limit; each live one deleted at a version of its own); called again while
-- it goes through a full batch, so that no one call holds the server long
local now = now_ms()
local keys = keys_under(ARGV[5], tonumber(ARGV[6]))
for _, key in ipairs(keys) do
  expire(key, now)
  if version_of(key) then
    remove_at(key, redis.call('INCR', REV), 0)
  else
    redis.call('ZREM', INDEX, key) -- an index entry without its key: gone too
  end
end
return #keys

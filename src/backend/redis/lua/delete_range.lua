-- delete_range(prefix) -> how many keys, each deleted at a version of its own
local now = now_ms()
local n = 0
for _, key in ipairs(keys_under(ARGV[4])) do
  expire(key, now)
  if version_of(key) then
    remove_at(key, redis.call('INCR', REV), 0)
    n = n + 1
  end
end
return n

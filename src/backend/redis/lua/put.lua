-- put(key, value, ttl_ms or '') -> version
local key, value, ttl = ARGV[5], ARGV[6], ARGV[7]
local now = now_ms()
expire(key, now)
local deadline = nil
if ttl ~= '' then deadline = now + tonumber(ttl) end
local version = redis.call('INCR', REV)
set_at(key, value, version, 0, deadline)
return version

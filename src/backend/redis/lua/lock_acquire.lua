-- lock_acquire(key, value, owner token, ttl_ms) -> fencing version, or 0 when held
local key, value, token, ttl = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local now = now_ms()
expire(key, now)
if redis.call('HGET', hkey(key), 'owner') then return 0 end
local version = redis.call('INCR', REV)
set_at(key, value, version, 0, now + ttl)
redis.call('HSET', hkey(key), 'owner', token)
return version

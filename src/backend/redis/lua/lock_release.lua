-- lock_release(key, owner token) -> the deletion's version, or 0 when not held by it
local key, token = ARGV[5], ARGV[6]
expire(key, now_ms())
if redis.call('HGET', hkey(key), 'owner') ~= token then return 0 end
local version = redis.call('INCR', REV)
remove_at(key, version, 0)
return version

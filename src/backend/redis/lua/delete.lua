-- delete(key) -> its deletion's version, or 0 when it was absent
local key = ARGV[5]
expire(key, now_ms())
if not version_of(key) then return 0 end
local version = redis.call('INCR', REV)
remove_at(key, version, 0)
return version

-- atomic_delete(key, previous version) -> 1 when deleted, else 0
local key, previous = ARGV[5], ARGV[6]
expire(key, now_ms())
if version_of(key) ~= tonumber(previous) then return 0 end
remove_at(key, redis.call('INCR', REV), 0)
return 1

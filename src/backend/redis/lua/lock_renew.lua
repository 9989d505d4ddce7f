-- lock_renew(key, owner token, ttl_ms) -> 1 while the token holds it, else 0
local key, token, ttl = ARGV[5], ARGV[6], tonumber(ARGV[7])
local now = now_ms()
expire(key, now)
if redis.call('HGET', hkey(key), 'owner') ~= token then return 0 end
redis.call('PEXPIREAT', hkey(key), now + ttl)
redis.call('ZADD', TTL, now + ttl, key)
return 1

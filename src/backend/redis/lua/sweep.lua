-- sweep() -> how many keys whose TTL passed were deleted (at most 100 a call)
local due = redis.call('ZRANGEBYSCORE', TTL, '-inf', now_ms(), 'LIMIT', 0, 100)
for _, key in ipairs(due) do
  remove_at(key, redis.call('INCR', REV), 0)
end
return #due

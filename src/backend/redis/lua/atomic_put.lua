-- atomic_put(key, value, previous version or '' for absent) -> version, or 0
local key, value, previous = ARGV[5], ARGV[6], ARGV[7]
expire(key, now_ms())
local current = version_of(key)
if previous == '' then
  if current then return 0 end
elseif current ~= tonumber(previous) then
  return 0
end
local version = redis.call('INCR', REV)
set_at(key, value, version, 0, nil)
return version

-- txn(n, n × (key, version or ''), g, g × (lock key, owner token),
--     m, m × (put|del, key, value))
--   -> {1, version} committed, or {0, {keys whose check failed}}
local now = now_ms()
local at = 6
local failed, named = {}, {}
local function fail(key)
  if not named[key] then
    named[key] = true
    failed[#failed + 1] = key
  end
end
for _ = 1, tonumber(ARGV[5]) do
  local key, want = ARGV[at], ARGV[at + 1]
  at = at + 2
  expire(key, now)
  local current = version_of(key)
  local holds
  if want == '' then holds = current == nil else holds = current == tonumber(want) end
  if not holds then fail(key) end
end
-- A lock is held while its key carries the holder's owner token.
for _ = 1, tonumber(ARGV[at]) do
  local key, token = ARGV[at + 1], ARGV[at + 2]
  at = at + 2
  expire(key, now)
  if redis.call('HGET', hkey(key), 'owner') ~= token then fail(key) end
end
at = at + 1
if #failed > 0 then return {0, failed} end
local writes = {}
for i = 1, tonumber(ARGV[at]) do
  writes[i] = {ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]}
  at = at + 3
  expire(writes[i][2], now)
end
local changes = false
for _, w in ipairs(writes) do
  if w[1] == 'put' or version_of(w[2]) then changes = true end
end
if not changes then return {1, tonumber(redis.call('GET', REV) or '0')} end
local version = redis.call('INCR', REV)
local i = 0
for _, w in ipairs(writes) do
  if w[1] == 'put' then
    set_at(w[2], w[3], version, i, nil)
    i = i + 1
  elseif version_of(w[2]) then
    remove_at(w[2], version, i)
    i = i + 1
  end
end
return {1, version}

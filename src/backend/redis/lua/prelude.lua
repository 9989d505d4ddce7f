-- kvmesh's Redis layout, shared by every script (prepended to each).
-- ARGV[1] the namespace prefix "{ns}:", ARGV[2] the change log's length,
-- ARGV[3] how many tombstones to keep, ARGV[4] the epoch the caller knows;
-- the script's own arguments follow.
-- Every key is under the one hash tag {ns}: one slot, so each script is one
-- atomic step (and the layout works on Redis Cluster).
local P = ARGV[1]
local MAXLEN = tonumber(ARGV[2])
local MAXTOMB = tonumber(ARGV[3])
local REV = P .. 'rev'
local INDEX = P .. 'index'
local LOG = P .. 'log'
local TTL = P .. 'ttl'
local TOMB = P .. 'tomb'
local FLOOR = P .. 'tombfloor'

local function hkey(key) return P .. 'k:' .. key end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- One entry of the change log, at stream id <version>-<i>.
local function append(version, i, key, value)
  local id = string.format('%d-%d', version, i)
  if value then
    redis.call('XADD', LOG, 'MAXLEN', '~', MAXLEN, id, 'k', key, 'op', 'put', 'v', value)
  else
    redis.call('XADD', LOG, 'MAXLEN', '~', MAXLEN, id, 'k', key, 'op', 'del')
  end
end

-- Remembers a deletion, forgetting the oldest beyond the limit.
local function bury(key, version)
  redis.call('ZADD', TOMB, version, key)
  local extra = redis.call('ZCARD', TOMB) - MAXTOMB
  if extra > 0 then
    local gone = redis.call('ZRANGE', TOMB, 0, extra - 1, 'WITHSCORES')
    redis.call('ZREMRANGEBYRANK', TOMB, 0, extra - 1)
    redis.call('SET', FLOOR, gone[#gone])
  end
end

local function version_of(key)
  local v = redis.call('HGET', hkey(key), 'version')
  if v then return tonumber(v) end
  return nil
end

-- Deletes key at version, logged.
local function remove_at(key, version, i)
  redis.call('DEL', hkey(key))
  redis.call('ZREM', INDEX, key)
  redis.call('ZREM', TTL, key)
  append(version, i, key, nil)
  bury(key, version)
end

-- A key whose TTL passed is deleted now, at a version of its own, before a
-- write looks at it: its Delete is in the log even if no sweep ran yet.
local function expire(key, now)
  local deadline = redis.call('ZSCORE', TTL, key)
  if deadline and tonumber(deadline) <= now then
    remove_at(key, redis.call('INCR', REV), 0)
  end
end

-- Writes key at version (a deadline in Unix ms, or nil), logged; a lock's
-- owner goes with the old value.
local function set_at(key, value, version, i, deadline)
  local h = hkey(key)
  redis.call('HSET', h, 'value', value, 'version', version)
  redis.call('HDEL', h, 'owner')
  redis.call('ZADD', INDEX, 0, key)
  redis.call('ZREM', TOMB, key)
  if deadline then
    redis.call('PEXPIREAT', h, deadline)
    redis.call('ZADD', TTL, deadline, key)
  else
    redis.call('PERSIST', h)
    redis.call('ZREM', TTL, key)
  end
  append(version, i, key, value)
end

-- The index's keys under prefix (after the key `after`, if one is given),
-- at most limit of them.
local function keys_under(prefix, limit, after)
  local from, to = '[' .. prefix, '(' .. prefix .. '\255'
  -- 0xFF never occurs in UTF-8: every key with the prefix sorts below it.
  if prefix == '' then from, to = '-', '+' end
  if after and after ~= '' then from = '(' .. after end
  if limit then return redis.call('ZRANGEBYLEX', INDEX, from, to, 'LIMIT', 0, limit) end
  return redis.call('ZRANGEBYLEX', INDEX, from, to)
end

-- The store's epoch: set once (raise.lua), gone with the data when the server
-- loses it (a restart without persistence, FLUSHALL, a lagging replica
-- promoted). A caller that knows another epoch re-establishes the version
-- counter first, so that no version is handed out twice.
local EPOCH = P .. 'epoch'
local epoch_now = redis.call('GET', EPOCH)
if epoch_now ~= ARGV[4] then
  return redis.error_reply('KVMESH_EPOCH the store\'s data was lost or replaced')
end

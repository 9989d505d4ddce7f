-- raise(prefix, floor, fresh epoch) -> {epoch, version counter}: run without
-- the prelude (whose epoch check it answers). Raises the store's version
-- counter to at least floor (never hand out a version a store already saw)
-- and sets the epoch unless another store set one first.
local P, floor, fresh = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local rev = tonumber(redis.call('GET', P .. 'rev') or '0')
if rev < floor then
  redis.call('SET', P .. 'rev', floor)
  rev = floor
end
redis.call('SET', P .. 'epoch', fresh, 'NX')
return {redis.call('GET', P .. 'epoch'), rev}

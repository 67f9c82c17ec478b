"""The Lua scripts of the leases and the per-call steps (``controller.adapters.redis.leases``).

Each is one atomic step. Above each: its ``KEYS`` and ``ARGV`` (what the caller passes, in
order) and what it does and returns. Keys are named as in README "Redis keys" (under the
prefix: ``controller.adapters.redis.keys``).
"""

# KEYS[1] lease   ARGV[1] my token  ARGV[2] "<my id>/"  ARGV[3] ttl ms  ARGV[4] "1": mine counts
# Take the lease if it is free, held by our previous life, or (ARGV[4]) already ours.
CLAIM = """
local cur = redis.call('GET', KEYS[1])
if (not cur) or (cur == ARGV[1] and ARGV[4] == '1')
   or (cur ~= ARGV[1] and string.sub(cur, 1, #ARGV[2]) == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return 1
end
return 0
"""

# KEYS[1] lease  ARGV[1] my token
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# KEYS = N node leases, then pairs (call lease, call:<id>)   ARGV[1] my token  ARGV[2] ttl ms
# ARGV[3] N.  A node lease: ours -> extend; lapsed -> take again (we still hold its websocket).
# A call lease: ours -> extend; lapsed while the call's state still exists -> take again.
# Else (someone else's; or the call ended) -> 0.
RENEW = """
local out = {}
local n = tonumber(ARGV[3])
for i = 1, n do
  local cur = redis.call('GET', KEYS[i])
  if cur == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    out[#out + 1] = 1
  elseif not cur then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
for i = n + 1, #KEYS, 2 do
  local cur = redis.call('GET', KEYS[i])
  if cur == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    out[#out + 1] = 1
  elseif (not cur) and redis.call('EXISTS', KEYS[i + 1]) == 1 then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""

# KEYS[1] call:<id>  KEYS[2] calls:live  KEYS[3] lease:call:<id>  KEYS[4] calls:node:<node>
# KEYS[5] trace:<id>   ARGV[1] call id  ARGV[2] started  ARGV[3] hash ttl s  ARGV[4] my token
# ARGV[5] lease ms  ARGV[6..] field/value pairs.   A new call: lease, hash and indexes in one
# step; 0: another controller holds its lease. 2: the call has ended already (its trace,
# written by FINISH_CALL, exists): nothing is written. The start is sent in the background
# and, over a connection pool, may reach Redis after the call's own end (another connection,
# still connecting): it must not bring the call back.
START_CALL = """
if redis.call('EXISTS', KEYS[5]) == 1 then
  return 2
end
local cur = redis.call('GET', KEYS[3])
if cur and cur ~= ARGV[4] then
  return 0
end
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
redis.call('HSET', KEYS[1], 'owner', ARGV[4], unpack(ARGV, 6))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
return 1
"""

# KEYS[1] call:<id>  KEYS[2] calls:live  KEYS[3] lease:call:<id>  KEYS[4] calls:node:<node>
# KEYS[5] lastcall  KEYS[6] trace:<id>  KEYS[7] calllog, then NB busy:<user>, NU user:<user>,
# NC stats:<key> keys.   ARGV[1] call id  ARGV[2] my token  ARGV[3] now  ARGV[4] trace JSON
# ARGV[5] trace ttl s  ARGV[6] record JSON  ARGV[7] calllog maxlen  ARGV[8] NB  ARGV[9] NU
# ARGV[10] NC, then NB busy users, NU published receive_calls ("1"/"0") of the user:<user>
# keys, NC (field, increment, index of the owning user in the user keys or 0) triples.
# A finished call in one step: state, indexes and lease gone; busy marks released (only the
# ones this call holds) with the end of the user's call stamped; trace and call log written;
# answered/missed counters added, leaving out users opted out right now (runtime override
# in user:<user>, else the published value). The record is written once: a trace already
# there means this end was written before (a retry after a lost reply, a re-sync, a peer):
# then only the state, indexes and our lease go, and it returns 0.
FINISH_CALL = """
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[4], ARGV[1])
if redis.call('GET', KEYS[3]) == ARGV[2] then
  redis.call('DEL', KEYS[3])
end
if redis.call('EXISTS', KEYS[6]) == 1 then
  return 0
end
local nb, nu, nc = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local k, a = 8, 11
for i = 1, nb do
  if redis.call('GET', KEYS[k]) == ARGV[1] then
    redis.call('DEL', KEYS[k])
    redis.call('ZADD', KEYS[5], ARGV[3], ARGV[a])
  end
  k, a = k + 1, a + 1
end
local out = {}
for i = 1, nu do
  local rc = redis.call('HGET', KEYS[k], 'receive_calls') or ARGV[a]
  out[i] = rc ~= '1'
  k, a = k + 1, a + 1
end
for i = 1, nc do
  local owner = tonumber(ARGV[a + 2])
  if owner == 0 or not out[owner] then
    redis.call('HINCRBY', KEYS[k], ARGV[a], ARGV[a + 1])
  end
  k, a = k + 1, a + 3
end
redis.call('SET', KEYS[6], ARGV[4], 'EX', ARGV[5])
redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[7], '*', 'record', ARGV[6])
return 1
"""

# KEYS[1] call:<id>, then busy:<user> keys   ARGV[1] call id  ARGV[2] busy ttl s
# ARGV[3] "1": claim, "0": save   ARGV[4..] field/value pairs.
# Claim (a leg answered, before the caller is answered or bridged): its users must be free
# or already this call's, else nothing is written and 0 is returned (booked by another
# call). Then their busy marks and the call's connected state (what a peer needs to finish
# the connect and supervise the call) in the same step: 1; 2 if the call's state does not
# exist (not written yet: its marks are set, its state is written later).
# Save (the state of a bridged call written again: a handover, Redis back): only while the
# call is live (its state exists; else 0), so a late write never marks anyone busy for a
# call that already ended; a busy mark held by another call is left alone.
CONNECTED = """
local claim = ARGV[3] == '1'
local free = true
for i = 2, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  if cur and cur ~= ARGV[1] then
    free = false
  end
end
if claim and not free then
  return 0
end
local live = redis.call('EXISTS', KEYS[1]) == 1
if not (claim or live) then
  return 0
end
for i = 2, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  if (not cur) or cur == ARGV[1] then
    redis.call('SET', KEYS[i], ARGV[1], 'EX', ARGV[2])
  end
end
if not live then
  return 2
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
return 1
"""

# KEYS[1] lease:call:<id>  KEYS[2] call:<id>   ARGV[1] my token  ARGV[2] "<my id>/"
# ARGV[3] ttl ms.   Adopt an orphan: claim its lease (free or our previous life's) and
# stamp the new owner on the call. Returns the call's hash as it was (its "owner" is the
# previous one); -1 if the call's state is gone,
# 0 if another controller holds it.
ADOPT = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  return -1
end
local cur = redis.call('GET', KEYS[1])
if cur and (cur == ARGV[1] or string.sub(cur, 1, #ARGV[2]) ~= ARGV[2]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
local state = redis.call('HGETALL', KEYS[2])
redis.call('HSET', KEYS[2], 'owner', ARGV[1])
return state
"""

# KEYS[1] controllers (zset)  KEYS[2] controller:<id>
# ARGV[1] id  ARGV[2] now ms  ARGV[3] ttl ms  ARGV[4] JSON {token, nodes, primary}
# Say we are alive; forget controllers whose presence lapsed. Returns {our presence as it
# was (false if none), live id, live id, ...}.
HEARTBEAT = """
local before = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3])
redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local out = {before}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  out[#out + 1] = id
end
return out
"""

# KEYS = lease:call:<id> keys   ARGV[1] my token.   A handover: release the call leases
# that are still ours (the others are left alone). Returns how many were released.
RELEASE_CALLS = """
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
return n
"""

# KEYS[1] trace:<id>  KEYS[2] calllog  KEYS[3] blocklist:hits  KEYS[4] blocklist:blocked
# ARGV[1] trace JSON  ARGV[2] trace ttl s  ARGV[3] record JSON  ARGV[4] calllog maxlen
# ARGV[5] the blocklist pattern that matched ("" if none)
# A call rejected on arrival (controller.shell.rejected): trace, call log record and the
# blocklist counters in one step, written once (a trace already there: 0, nothing changes),
# so a retry after a lost reply or a re-sync after an outage logs the call once.
LOG_REJECTED = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'record', ARGV[3])
if ARGV[5] ~= '' then
  redis.call('HINCRBY', KEYS[3], ARGV[5], 1)
  redis.call('INCR', KEYS[4])
end
return 1
"""

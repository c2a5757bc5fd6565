-- Record how an attempt ended, if the caller still holds it (its lease is the one in
-- the ledger): a holder that lost its lease to another cannot overwrite their outcome.
-- KEYS: 1 the message's ledger hash; ARGV: DeliveryFinishArgs (edge/store/scripts.py)
-- state: sent | failed | dead | retry; message: the message (JSON), kept with it.
-- Reply: 1 recorded, 0 not held.
local ledger = KEYS[1]
local state, lease_until, provider_id, reason, now, message =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local found = redis.call('HMGET', ledger, 's', 'l')
if found[1] ~= 'sending' or found[2] ~= lease_until then
  return 0
end
redis.call('HSET', ledger, 's', state, 'p', provider_id, 'r', reason, 't', now)
if message ~= '' then
  -- what a retry sends when it comes due, and what a provider's later status joins to
  redis.call('HSET', ledger, 'm', message)
end
return 1

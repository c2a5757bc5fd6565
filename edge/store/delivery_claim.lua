-- Take one outbound message for sending, or say why not: the ledger entry of a message
-- id is what makes a redelivered outbox entry or a repeated retry send at most once.
-- KEYS: 1 the message's ledger hash; ARGV: DeliveryClaimArgs (edge/store/scripts.py)
-- mode: "new" (read from the outbox), "retry" (its retry came due), "retake" (the
-- caller resends an interrupted attempt with the provider's idempotency key).
-- Replies: go (attempt), done (state: sent | failed | dead), busy (another holder's
-- lease runs), scheduled (a retry waits), interrupted (attempt: a holder died sending).
local ledger = KEYS[1]
local mode, now, lease_until, ttl_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local found = redis.call('HMGET', ledger, 's', 'a', 'l')
local state, attempt, lease = found[1], tonumber(found[2] or '0'), found[3]
if not state then
  redis.call('HSET', ledger, 's', 'sending', 'a', 1, 'l', lease_until)
  redis.call('PEXPIRE', ledger, ttl_ms)
  return {'go', 1}
end
if state == 'sent' or state == 'failed' or state == 'dead' then
  return {'done', state}
end
if state == 'retry' then
  if mode ~= 'retry' then
    return {'scheduled'}
  end
  redis.call('HSET', ledger, 's', 'sending', 'a', attempt + 1, 'l', lease_until)
  return {'go', attempt + 1}
end
-- sending
if tonumber(lease) > tonumber(now) then
  return {'busy'}
end
if mode == 'retake' then
  redis.call('HSET', ledger, 'a', attempt + 1, 'l', lease_until)
  return {'go', attempt + 1}
end
return {'interrupted', attempt}

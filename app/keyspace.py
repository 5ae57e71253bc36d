"""Redis key prefixes that more than one part of Herald relies on.

Each prefix has one owner that reads and writes under it; the cache (app/cache) also names
the others so that its key guard can refuse them before any command is sent. Defined here,
rather than by their owners, so that knowing a neighbour's namespace imports nothing of it.
"""

from __future__ import annotations

# The field-level read cache (app/cache): values, generation counters and fill locks.
CACHE_PREFIX = "cache:"
# Campaign dispatch (app/campaigns): per-campaign locks, progress, activity, sweep and halt
# marks.
CAMPAIGN_PREFIX = "campaign:"
# The WhatsApp provider's limits shared by every worker (app/whatsapp/limit.py, pacing.py).
WHATSAPP_PREFIX = "whatsapp:"
# Documents registered by Apollo's automatic persisted queries (app/http/persisted.py).
PERSISTED_PREFIX = "apq:"
# Dramatiq's Redis broker (app/worker/broker.py): queues and their bookkeeping.
BROKER_NAMESPACE = "dramatiq"

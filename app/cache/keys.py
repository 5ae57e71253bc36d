"""The cache's keys and generation counters: where a value lives, what invalidates it.

Keys. Everything lives under `cache:`; `whatsapp:`, `campaign:` and the broker's namespace
belong to other owners (app/keyspace.py) and `guard()` refuses them before any command is
sent.
  - values:      cache:<namespace>:<name>             SET ... EX <ttl>
  - generations: cache:gen:<namespace>[:<scope>]      INCR, no TTL
  - fill locks:  cache:lock:<namespace>:<name>        SET NX PX, short-lived

Invalidation is O(1): `INCR` a namespace's (or one entity's) generation. A value is stored
as `<generations it was computed under>|<orjson payload>` (app/cache/codec.py), and a read
fetches the current generations in the same MGET as the values, so one round trip both
reads and validates. Values are stamped with the generations read *before* computing, so a
value computed from data a concurrent mutation has since replaced is already stale when it
is written.

What invalidates what. A value is valid while every generation it was stamped with is
unchanged; the writers below bump them after their transaction commits: the service (or
the task) that writes records what it changed in the transaction's `Changes`
(app/changes/record.py, whose methods name the generations each change bumps), and the
boundary that commits applies them (app/changes/apply.py: the request, the webhook, each
worker task). The counts themselves come from
counters PostgreSQL keeps in the same transaction as every change (app/stats), so a miss
costs a few rows, never a scan.

| field (namespace[, scope])          | invalidated by                                        |
|-------------------------------------|-------------------------------------------------------|
| dashboard.recentCampaigns           | create/update/delete/start/schedule/pause/resume/     |
|   (campaigns)                       | cancel campaign, setCampaignTargets,                  |
|                                     | retryFailedMessages, deleteCategory, deleteContact;   |
|                                     | workers: scheduled start, completion, interrupted     |
|                                     | messages swept (progress with force=True)             |
| Campaign.stats, finished only       | everything above, and one campaign's progress: each   |
|   (campaigns, campaign id)          | batch, status webhook or reply (debounced to 1 s)     |
| dashboard (stats; + categories)     | every campaign and contact change above, each batch   |
| messageStats (stats)                | and webhook (debounced), opt-outs, numbers found      |
|                                     | invalid; the dashboard also any category mutation     |
| contacts pages that scan (search,   | contact mutations and imports, membership changes,    |
|   status or opt-out filter),        | opt-outs, numbers found invalid (send, webhook,       |
|   Category.contactCount (contacts)  | verifyContacts)                                       |
| categories, category (categories)   | category mutations, membership changes                |

Everything also expires by its TTL (Settings), the backstop when Redis missed a bump. The
`campaigns` list and plain or per-category `contacts` pages are not cached: an index range
read costs less than a hit, and is never stale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from redis.asyncio import Redis

from app.cache.codec import Stamp
from app.config import Settings
from app.keyspace import (
    BROKER_NAMESPACE,
    CACHE_PREFIX,
    CAMPAIGN_PREFIX,
    PERSISTED_PREFIX,
    WHATSAPP_PREFIX,
)

PROTECTED_PREFIXES: tuple[str, ...] = (
    WHATSAPP_PREFIX,
    CAMPAIGN_PREFIX,
    PERSISTED_PREFIX,
    BROKER_NAMESPACE,
)
NAMESPACES: tuple[str, ...] = ("stats", "categories", "contacts", "campaigns")
# Sub-prefixes the service itself uses; a namespace may never be named like them.
_RESERVED = ("gen", "lock")
assert not set(NAMESPACES) & set(_RESERVED)
assert not CACHE_PREFIX.startswith(PROTECTED_PREFIXES)


class ProtectedKeyError(ValueError):
    """A key outside `cache:` (or under a protected prefix) reached the cache."""


def guard(key: str) -> str:
    """Refuse any key the cache does not own; checked before every command."""
    if not key.startswith(CACHE_PREFIX) or key.startswith(PROTECTED_PREFIXES):
        raise ProtectedKeyError(f"the cache may not touch {key!r}")
    return key


def check_namespace(namespace: str) -> str:
    if namespace not in NAMESPACES:
        raise ValueError(f"unknown cache namespace {namespace!r}; expected one of {NAMESPACES}")
    return namespace


class Scope(NamedTuple):
    """One entity's generation inside a namespace (e.g. one campaign's stats)."""

    namespace: str
    id: object


def gen_key(target: str | Scope) -> str:
    if isinstance(target, Scope):
        return f"{CACHE_PREFIX}gen:{check_namespace(target.namespace)}:{target.id}"
    return f"{CACHE_PREFIX}gen:{check_namespace(target)}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One cacheable value: where it lives, which generations guard it, how long it lives."""

    namespace: str
    key: str
    gen_keys: tuple[str, ...]
    ttl: int

    @classmethod
    def of(
        cls,
        namespace: str,
        name: str,
        ttl: int,
        scope: object = None,
        depends_on: tuple[str, ...] = (),
    ) -> Entry:
        gens = [gen_key(namespace), *(gen_key(other) for other in depends_on)]
        if scope is not None:
            gens.append(gen_key(Scope(namespace, scope)))
        return cls(
            namespace, f"{CACHE_PREFIX}{check_namespace(namespace)}:{name}", tuple(gens), ttl
        )

    def lock_key(self, stamp: Stamp) -> str:
        """The right to fill this value as computed under `stamp`'s generations: a fill of
        an older generation, whose value no later reader can use, holds up no one."""
        generations = ",".join(map(str, stamp))
        return f"{CACHE_PREFIX}lock:{self.key[len(CACHE_PREFIX) :]}@{generations}"


# Each namespace's default TTL; fields may override it (lists, campaign stats).
_TTLS: dict[str, Callable[[Settings], int]] = {
    "stats": lambda settings: settings.cache_ttl_stats,
    "categories": lambda settings: settings.cache_ttl_categories,
    "contacts": lambda settings: settings.cache_ttl_contacts_count,
    "campaigns": lambda settings: settings.cache_ttl_campaigns_list,
}
assert set(_TTLS) == set(NAMESPACES)


def ttl_for(settings: Settings, namespace: str) -> int:
    """The namespace's default TTL from Settings; every namespace has one."""
    return _TTLS[check_namespace(namespace)](settings)


async def bump_generations(redis: Redis, *targets: str | Scope) -> None:
    """Invalidate from outside a request (dispatch workers, webhooks): one pipelined INCR each."""
    pipe = redis.pipeline(transaction=False)
    for target in targets:
        pipe.incr(guard(gen_key(target)))
    await pipe.execute()

"""What a request is given besides its session: loaders that build the schema's types, and
the field cache. The benchmarks' N+1 baseline (`HERALD_NAIVE_RESOLVERS`) is chosen here,
and nowhere else."""

from __future__ import annotations

from app.cache import CacheService, RequestCache
from app.config import Settings
from app.db.engine import SerializedSession
from loaders.base import Types
from loaders.naive import NaiveLoaders, NoCache
from loaders.registry import Loaders
from schema.api_keys.types import ApiKeyType
from schema.campaigns.types import CampaignType, MessageStats
from schema.categories.types import CategoryType
from schema.contacts.types import ContactType
from schema.messages.types import InteractionType, MessageType
from schema.templates.types import TemplateType

TYPES = Types(
    api_key=ApiKeyType,
    campaign=CampaignType,
    category=CategoryType,
    contact=ContactType,
    message=MessageType,
    interaction=InteractionType,
    message_stats=MessageStats,
    template=TemplateType,
)


def request_loaders(session: SerializedSession, settings: Settings) -> Loaders:
    """Batching loaders, or the audited API's N+1 access (loaders/naive.py)."""
    factory = NaiveLoaders if settings.naive_resolvers else Loaders
    return factory(session, TYPES)


def request_cache(service: CacheService, settings: Settings) -> RequestCache:
    """The field cache of one request; the N+1 baseline caches nothing."""
    return NoCache(service) if settings.naive_resolvers else RequestCache(service)

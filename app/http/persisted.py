"""Persisted documents: requests that name their document by id or hash instead of text.

- Trusted documents: `HERALD_TRUSTED_DOCUMENTS` names a JSON manifest `{id: document}`, as
  graphql-codegen's client preset (`persisted-documents.json`) and Relay's compiler
  (`persisted_queries.json`) write it, read once at start. A request names one by
  `documentId` (the GraphQL-over-HTTP spec: the manifest's key, or `sha256:<hex>`), Relay's
  `doc_id` or `id`, or Apollo's `extensions.persistedQuery.sha256Hash`. With
  `HERALD_TRUSTED_DOCUMENTS_ONLY=true` nothing else runs: PERSISTED_QUERY_NOT_ALLOWED.
- Apollo's automatic persisted queries: a hash the server does not know gets
  PERSISTED_QUERY_NOT_FOUND, and the client sends the text with its hash. The hash is
  checked, and once the document validates (schema/execution/pipeline.py) it is remembered in this
  process (a bounded LRU: a known hash costs no round trip) and in Redis (`apq:<hash>`, for
  24 h), so that every API process knows it: one not-found per document, not per process.
  Only a validated document of at most 64 KB is stored, each store is a request that passed
  the rate limit, and each expires. Redis down: hashes are looked up in this process only.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.cache import count_round_trips
from app.config import Settings
from app.http.graphql import Parameters, Refusal
from app.keyspace import PERSISTED_PREFIX

logger = logging.getLogger(__name__)

REMEMBERED_MAX_CHARS = 64 * 1024  # a longer document is answered, not remembered
REMEMBERED_TTL_S = 24 * 3600
_RECENT = 512  # documents this process keeps: at most 32 MB
_HEX = frozenset("0123456789abcdef")


class Document(NamedTuple):
    query: str
    remember: str | None  # the hash to store `query` under once it validates


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _identifier(document_id: str) -> str:
    """A document id as the manifest keys it: `sha256:<hex>` (the spec's form) as `<hex>`."""
    return document_id.removeprefix("sha256:")


def read_manifest(path: str) -> dict[str, str]:
    """A manifest of trusted documents, `{id: document}`, keyed by its ids and by each
    document's SHA-256 too (Relay's ids are MD5s; Apollo's clients send the SHA-256)."""
    try:
        manifest = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"HERALD_TRUSTED_DOCUMENTS: cannot read {path}: {exc}") from exc
    if not isinstance(manifest, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in manifest.items()
    ):
        raise ValueError(f"HERALD_TRUSTED_DOCUMENTS: {path} is not a JSON object of documents")
    documents = {_identifier(key): text for key, text in manifest.items()}
    return {**{sha256_hex(text): text for text in documents.values()}, **documents}


def _not_found() -> Refusal:
    # Apollo's link matches the message as well as the code.
    return Refusal("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")


def not_allowed() -> Refusal:
    return Refusal("only trusted documents may run on this server", "PERSISTED_QUERY_NOT_ALLOWED")


class PersistedDocuments:
    """The documents requests may name instead of sending them: trusted ones, and (unless
    only those may run) the ones automatic persisted queries registered."""

    def __init__(self, trusted: dict[str, str], only: bool) -> None:
        self.trusted = trusted
        self.trusted_texts = frozenset(trusted.values())
        self.only = only
        self._recent: OrderedDict[str, str] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> PersistedDocuments:
        path = settings.trusted_documents
        trusted = read_manifest(path) if path else {}
        if settings.trusted_documents_only and not trusted:
            raise ValueError("HERALD_TRUSTED_DOCUMENTS_ONLY: no trusted documents to allow")
        if trusted:
            logger.info("trusted documents: %d from %s", len(set(trusted.values())), path)
        return cls(trusted, settings.trusted_documents_only)

    async def document(self, params: Parameters, redis: Redis) -> Document:
        """The request's document text, and the hash to remember it under; refused when the
        request names a document it may not run or that is not known."""
        if params.document_id is not None:
            if params.query is not None:
                raise Refusal("send either `query` or a document id, not both", "BAD_REQUEST")
            found = self.trusted.get(_identifier(params.document_id))
            if found is None:
                raise _not_found()
            return Document(found, None)
        sha256 = params.sha256
        if sha256 is not None and params.query is None:
            found = self.trusted.get(sha256) or (
                None if self.only else await self._registered(sha256, redis)
            )
            if found is None:
                raise _not_found()
            return Document(found, None)
        query = params.query
        assert query is not None  # request_parameters refuses a request without a document
        if not self.allows(query):
            raise not_allowed()
        if sha256 is None:
            return Document(query, None)
        if sha256_hex(query) != sha256:
            raise Refusal("provided sha does not match query", "PERSISTED_QUERY_HASH_MISMATCH")
        known = self.only or sha256 in self.trusted or sha256 in self._recent
        return Document(query, None if known else sha256)

    def allows(self, query: str) -> bool:
        """Whether a document sent as text may run (a WebSocket's, say)."""
        return not self.only or query in self.trusted_texts

    async def _registered(self, sha256: str, redis: Redis) -> str | None:
        found = self._recent.get(sha256)
        if found is not None:
            self._recent.move_to_end(sha256)
            return found
        if len(sha256) != 64 or not _HEX.issuperset(sha256):
            return None  # not a hash Herald would have stored: no round trip
        try:
            with count_round_trips():  # not the request's own (`redisRoundTrips`)
                stored = await redis.get(PERSISTED_PREFIX + sha256)
        except (RedisError, OSError):
            return None
        if stored is None:
            return None
        text = stored.decode() if isinstance(stored, bytes) else str(stored)
        self._keep(sha256, text)
        return text

    async def remember(self, sha256: str, query: str, redis: Redis) -> None:
        """Stores a document that validated, here and for every process."""
        if len(query) > REMEMBERED_MAX_CHARS or sha256 in self._recent:
            return
        self._keep(sha256, query)
        # Redis down: this process still knows it; the others will ask for the text once.
        with contextlib.suppress(RedisError, OSError), count_round_trips():
            await redis.set(PERSISTED_PREFIX + sha256, query, ex=REMEMBERED_TTL_S, nx=True)

    def _keep(self, sha256: str, query: str) -> None:
        self._recent[sha256] = query
        if len(self._recent) > _RECENT:
            self._recent.popitem(last=False)

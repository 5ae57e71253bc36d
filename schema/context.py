"""The typed per-request context every resolver receives as `info.context`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

import strawberry
from redis.asyncio import Redis
from starlette.requests import HTTPConnection
from starlette.responses import Response

from app.cache import RequestCache
from app.config import Settings
from app.db.engine import SerializedSession
from app.worker.jobs import Jobs
from loaders.registry import Loaders

if TYPE_CHECKING:
    from app.api_keys.auth import RequestAuth
    from app.live.hub import LiveHub

AfterCommit: TypeAlias = Callable[[], Awaitable[None]]


@dataclass
class Context:
    request: HTTPConnection  # the HTTP request, or the WebSocket of a subscription
    response: Response  # on a WebSocket, a throwaway one: there are no headers to send
    settings: Settings
    session: SerializedSession
    redis: Redis
    loaders: Loaders
    cache: RequestCache  # field-level Redis cache (schema/cache.py), batched per request
    auth: RequestAuth  # the caller, resolved on the first permission check (schema/permissions.py)
    jobs: Jobs  # enqueues dispatch work (on commit: see `after_commit`)
    # Work that must only happen once the request's transaction is durable (enqueuing
    # jobs); dropped on rollback. What services changed is recorded with the session
    # (app/changes) and applied after these (schema/extensions.py).
    after_commit: list[AfterCommit] = field(default_factory=list)
    live: LiveHub | None = None  # the process's live progress hub, on WebSocket operations

    def on_commit(self, callback: AfterCommit) -> None:
        self.after_commit.append(callback)


Info: TypeAlias = strawberry.Info[Context, None]

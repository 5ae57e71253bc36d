"""Per-request authentication: the caller is looked up on first need, at most once."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from app.api_keys.service import ApiKeyService, Caller, bearer_token
from app.db import uncounted

if TYPE_CHECKING:
    from app.runtime import Runtime


class RequestAuth:
    """Lazily resolves `Authorization: Bearer <key>` into a Caller.

    Nothing is looked up until a protected field asks, so public requests (`version`,
    GraphiQL's page) spend no SQL. The lookup runs on the request's own session and is
    never cached across requests: a revoked key is refused by the very next request.
    """

    def __init__(self, session: AsyncSession, authorization: str | None) -> None:
        self._session = session
        self._token = bearer_token(authorization)
        self._lookup: asyncio.Task[Caller | None] | None = None

    @property
    def presented(self) -> bool:
        """Whether the request carried a well-formed bearer key (valid or not)."""
        return self._token is not None

    @property
    def token_digest(self) -> str | None:
        """A stable, non-secret name for the presented key (rate-limit buckets)."""
        if self._token is None:
            return None
        return hashlib.sha256(self._token.encode()).hexdigest()

    async def caller(self) -> Caller | None:
        # One shared task, not a lock: sibling fields checking permissions concurrently all
        # resume in the same loop iteration, so their loaders and cache reads still batch.
        # Shielded: a sibling cancelled by the executor must not cancel the others' lookup.
        if self._lookup is None:
            self._lookup = asyncio.ensure_future(self._authenticate())
        return await asyncio.shield(self._lookup)

    async def _authenticate(self) -> Caller | None:
        if self._token is None:
            return None
        with uncounted():
            return await ApiKeyService(self._session).authenticate(self._token)


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def metrics_access_refused(request: Request, runtime: Runtime) -> Response | None:
    """/metrics: open to the loopback (a local Prometheus agent or sidecar), any valid key
    from elsewhere. It holds counters only, but traffic volumes are nobody else's business."""
    if _is_loopback(request.client.host if request.client else None):
        return None
    token = bearer_token(request.headers.get("authorization"))
    if token is not None:
        async with runtime.sessionmaker() as session:
            caller = await ApiKeyService(session).authenticate(token)
            await session.commit()
        if caller is not None:
            return None
    return Response(
        "an API key is required: send `Authorization: Bearer <key>`",
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
        media_type="text/plain",
    )

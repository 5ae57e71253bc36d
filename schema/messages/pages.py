"""A parent's messages connection (a campaign's, a contact's): one loader call per parent,
or one for a whole list of parents (planned queries, schema/execution/plans/)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from app.db.pagination import Page
from app.models import MessageStatus
from loaders.messages import MessagePageKey
from schema.common.pagination import Connection, page_args
from schema.messages.columns import message_page_shape

if TYPE_CHECKING:
    from loaders.messages import MessageCountLoader, MessagePageLoader
    from schema.context import Info
    from schema.messages.types import MessageType


def _keys(
    info: Info,
    owners: Sequence[int],
    first: int | None,
    after: str | None,
    status: MessageStatus | None,
) -> tuple[list[MessagePageKey], Page]:
    page = page_args(info.context.settings, first, after)
    columns, with_interactions = message_page_shape(info)
    return [MessagePageKey(o, page, status, columns, with_interactions) for o in owners], page


async def messages_of(
    info: Info,
    owner: int,
    pages: MessagePageLoader,
    counts: MessageCountLoader,
    first: int | None,
    after: str | None,
    status: MessageStatus | None,
) -> Connection[MessageType]:
    [key], page = _keys(info, [owner], first, after, status)
    return Connection.of(await pages.load(key), page, lambda: counts.load((owner, status)))


async def messages_of_many(
    info: Info,
    owners: Sequence[int],
    pages: MessagePageLoader,
    counts: MessageCountLoader,
    first: int | None,
    after: str | None,
    status: MessageStatus | None,
) -> list[Connection[MessageType]]:
    """`messages_of` for many parents at once: one batch, no per-parent resolver call."""
    keys, page = _keys(info, owners, first, after, status)
    found = await pages.load_now(keys)
    return [
        Connection.of(nodes, page, _count(counts, owner, status))
        for owner, nodes in zip(owners, found, strict=True)
    ]


def _count(counts: MessageCountLoader, owner: int, status: MessageStatus | None) -> Any:
    return lambda: counts.load((owner, status))

"""A parent's messages connection (a campaign's, a contact's), one loader call per parent."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiodataloader import DataLoader

from app.models import MessageStatus
from loaders.keys import MessagePageKey
from schema.common.pagination import Connection, page_args
from schema.messages.columns import message_page_shape

if TYPE_CHECKING:
    from schema.context import Info
    from schema.messages.types import MessageType


async def messages_of(
    info: Info,
    owner: int,
    pages: DataLoader[MessagePageKey, list[MessageType]],
    counts: DataLoader[tuple[int, MessageStatus | None], int],
    first: int | None,
    after: str | None,
    status: MessageStatus | None,
) -> Connection[MessageType]:
    page = page_args(info.context.settings, first, after)
    columns, with_interactions = message_page_shape(info)
    key = MessagePageKey(owner, page, status, columns, with_interactions)
    return Connection.of(await pages.load(key), page, lambda: counts.load((owner, status)))

"""`Changes`: what a transaction changed that the cache and live subscribers must hear of.

The write records it where it happens, in the service (or the task) that knows what it
changed; the transaction's boundary applies it once committed (app/changes/apply.py): the
request (schema/extensions.py) and each worker task's commit. So a new mutation calling
a service cannot forget an invalidation, and a rollback drops what it recorded.

The record travels with the session (its `info`), like the writes it describes: a
savepoint opened with `nested` keeps what was recorded inside it only if it is released.
Which change bumps which generations is the table in app/cache/keys.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from app.whatsapp.errors import PauseReason

_KEY = "herald.changes"


@dataclass(frozen=True)
class Paused:
    """The campaigns a campaign-stopping error (or a sender number's quality) paused, and
    why."""

    reason: PauseReason
    campaign_ids: list[int]


@dataclass
class Changes:
    """Cache namespaces whose generations to bump, campaigns whose progress moved (and
    whether at once: `force`), pauses to announce."""

    namespaces: set[str] = field(default_factory=set)
    progress: dict[int, bool] = field(default_factory=dict)  # campaign id → force
    paused: list[Paused] = field(default_factory=list)

    def contacts(self, *, deleted: bool = False) -> None:
        """Contacts created, edited, imported, opted out or found invalid: their lists and
        counts, the global stats. Deleting contacts deletes their messages: every
        campaign's stats too."""
        self.namespaces |= {"contacts", "stats", *(("campaigns",) if deleted else ())}

    def categories(self, *, membership: bool = False) -> None:
        """A category created, edited or deleted; `membership`: contacts joined or left one
        (the contact pages filtered by category, Category.contactCount)."""
        self.namespaces |= {"categories", *(("contacts",) if membership else ())}

    def campaign(self) -> None:
        """A campaign's own row: lists, every campaign's stats (namespace), global stats."""
        self.namespaces |= {"campaigns", "stats"}

    def campaign_progress(self, campaign_id: int, *, force: bool = False) -> None:
        """Its messages moved (debounced); `force`: a state change to show at once."""
        self.progress[campaign_id] = force or self.progress.get(campaign_id, False)

    def campaigns_paused(self, paused: Paused) -> None:
        if paused.campaign_ids:
            self.paused.append(paused)

    def take(self) -> Changes:
        """Everything recorded so far, leaving this record empty."""
        taken = Changes(self.namespaces, self.progress, self.paused)
        self._become(Changes())
        return taken

    def _become(self, other: Changes) -> None:
        self.namespaces, self.progress, self.paused = other.namespaces, other.progress, other.paused

    def _copy(self) -> Changes:
        return Changes(set(self.namespaces), dict(self.progress), list(self.paused))


def changes_of(session: AsyncSession) -> Changes:
    """The record of what the session's transaction has changed so far (one per session,
    so services built on it at any time record into the same one)."""
    changes = session.info.get(_KEY)
    if changes is None:
        changes = session.info[_KEY] = Changes()
    assert isinstance(changes, Changes)
    return changes


def committed_changes(session: AsyncSession) -> Changes:
    """What the session's transaction changed, taken once it committed, to apply."""
    return changes_of(session).take()


@asynccontextmanager
async def nested(session: AsyncSession) -> AsyncIterator[None]:
    """A SAVEPOINT whose recorded changes go with its writes: rolled back, both are undone."""
    changes = changes_of(session)
    before = changes._copy()
    try:
        async with session.begin_nested():
            yield
    except BaseException:
        changes._become(before)
        raise

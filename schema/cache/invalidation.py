"""What mutations call to invalidate cached fields once their transaction commits.

Which writes bump which generations is the table in app/cache/keys.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.cache import Scope

if TYPE_CHECKING:
    from schema.context import Context


def invalidate_after_commit(context: Context, *targets: str | Scope) -> None:
    """Bump these generations once the request's transaction commits (dropped on rollback)."""
    context.cache.invalidate_after_commit(context.on_commit, *targets)


def contacts_changed(context: Context, *, deleted: bool = False) -> None:
    """Contact create/update/delete/import: global stats and contact counts and lists.

    Deleting contacts cascades to their messages, so every campaign's stats go too.
    """
    invalidate_after_commit(context, "stats", "contacts", *(("campaigns",) if deleted else ()))


def categories_changed(context: Context, *, membership: bool = False) -> None:
    """Category create/update/delete; `membership` when contacts joined or left one."""
    invalidate_after_commit(context, "categories", *(("contacts",) if membership else ()))


def campaign_changed(context: Context) -> None:
    """A campaign's own row changed: lists, every campaign's stats (namespace), global stats."""
    invalidate_after_commit(context, "campaigns", "stats")

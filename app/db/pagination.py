"""Keyset pagination shared by repositories: newest first, by id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ARRAY, BigInteger, ColumnElement, Select, bindparam, func, select, true


@dataclass(frozen=True)
class Page:
    """Fetch `limit + 1` rows (the extra one tells whether a next page exists) below `before_id`."""

    limit: int
    before_id: int | None = None

    def values(self, **more: object) -> dict[str, object]:
        """The values of a statement that pages by `:limit` and, below a cursor, `:before_id`."""
        values: dict[str, object] = {"limit": self.limit + 1, **more}
        if self.before_id is not None:
            values["before_id"] = self.before_id
        return values


def page_per_parent(
    child: Select,
    parent_column: ColumnElement[int],
    id_column: ColumnElement[int],
    after: bool,
) -> Select:
    """One statement returning a page of children for each parent (LATERAL join).

    Rows carry `owner_id`, the parent they belong to, plus the child's columns. This is
    how nested connections stay one statement per nesting level whatever the page count.
    The statement takes its values as parameters (see `page_parameters`), so callers can
    build it once per shape: constructing it anew cost more than running it.
    """
    parents = select(
        func.unnest(bindparam("owner_ids", type_=ARRAY(BigInteger))).label("owner_id")
    ).subquery("parents")
    children = child.where(parent_column == parents.c.owner_id)
    if after:
        children = children.where(id_column < bindparam("before_id"))
    lateral = children.order_by(id_column.desc()).limit(bindparam("limit")).lateral("children")
    return select(parents.c.owner_id, lateral).select_from(parents).join(lateral, true())


def page_parameters(owner_ids: Sequence[int], page: Page, **more: object) -> dict[str, object]:
    """The values of a `page_per_parent` statement."""
    return page.values(owner_ids=list(owner_ids), **more)

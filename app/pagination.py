"""Keyset pagination shared by repositories: newest first, by id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ARRAY, BigInteger, ColumnElement, Select, func, literal, select, true


@dataclass(frozen=True)
class Page:
    """Fetch `limit + 1` rows (the extra one tells whether a next page exists) below `before_id`."""

    limit: int
    before_id: int | None = None


def apply_page(stmt: Select, id_column: ColumnElement[int], page: Page) -> Select:
    if page.before_id is not None:
        stmt = stmt.where(id_column < page.before_id)
    return stmt.order_by(id_column.desc()).limit(page.limit + 1)


def page_per_parent(
    parent_ids: Sequence[int],
    child: Select,
    parent_column: ColumnElement[int],
    id_column: ColumnElement[int],
    page: Page,
) -> Select:
    """One statement returning a page of children for each parent (LATERAL join).

    Rows carry `owner_id`, the parent they belong to, plus the child's columns. This is
    how nested connections stay one statement per nesting level whatever the page count.
    """
    parents = select(
        func.unnest(literal(list(parent_ids), ARRAY(BigInteger))).label("owner_id")
    ).subquery("parents")
    children = apply_page(child.where(parent_column == parents.c.owner_id), id_column, page)
    lateral = children.lateral("children")
    return select(parents.c.owner_id, lateral).select_from(parents).join(lateral, true())

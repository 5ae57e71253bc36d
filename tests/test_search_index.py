"""`contacts(search:)` is served by its trigram indexes: the repository's own statements, as
PostgreSQL plans them for the seeded number of contacts just written, read the indexes, not
the whole table."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from app.contacts.repository import ContactFilter, _count, _page

pytestmark = pytest.mark.asyncio

# The seed's 20,000 contacts (DESIGN.md), named and numbered as the factories do, written by
# one statement as an import writes them.
INSERT_CONTACTS = """
INSERT INTO contacts (phone, name)
SELECT '+336' || (10000000 + i), 'Contact ' || i FROM generate_series(0, 19999) AS i
"""
INDEX_SCANS = (
    "Bitmap Index Scan on ix_contacts_name",
    "Bitmap Index Scan on ix_contacts_phone",
)


class Explain(Executable, ClauseElement):
    """`EXPLAIN` of a statement, compiled and bound exactly as the statement itself."""

    inherit_cache = False

    def __init__(self, statement: Select) -> None:
        self.statement = statement


@compiles(Explain)
def _explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN " + compiler.process(element.statement, **kw)


async def plan(session: AsyncSession, statement: Select, values: dict[str, object]) -> str:
    return "\n".join(row[0] for row in await session.execute(Explain(statement), values))


@pytest.mark.parametrize(
    "search",
    [
        pytest.param("tact 1234", id="name"),
        pytest.param("10001234", id="phone"),
        pytest.param("Ada", id="no match"),
    ],
)
async def test_a_search_of_three_characters_or_more_reads_the_trigram_indexes(
    session: AsyncSession, search: str
) -> None:
    # given: no vacuum since, so the indexes' pending lists hold what was just written
    await session.execute(text(INSERT_CONTACTS))
    await session.commit()
    await session.execute(text("ANALYZE contacts"))
    where = ContactFilter(search=search)

    # when: the page and the count statements `contacts(search:)` runs
    page = await plan(session, _page(where.shape(), False, None), {**where.values(), "limit": 21})
    count = await plan(session, _count(where.shape()), where.values())

    # then
    for found in (page, count):
        assert all(scan in found for scan in INDEX_SCANS), found
        assert "BitmapOr" in found, found
        assert "Seq Scan" not in found, found

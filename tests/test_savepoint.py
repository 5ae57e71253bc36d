"""`@savepoint`: a mutation's typed failure undoes its writes and the work it asked for.

A toy mutation on the real database: it writes a category, asks for after-commit work, then
fails (or not) with a domain error its result union lists, or one it does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest
import strawberry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Duplicate, NotFound
from schema.common.errors import NotFoundError
from schema.common.mutations import after_commit, savepoint

pytestmark = pytest.mark.asyncio


@dataclass
class Toy:
    """What `@savepoint` and `after_commit` use of the request's context."""

    session: AsyncSession
    after_commit: list[Any] = field(default_factory=list)

    def on_commit(self, callback: Any) -> None:
        self.after_commit.append(callback)


@strawberry.type
class Written:
    name: str


Result = Annotated[Written | NotFoundError, strawberry.union("ToyResult")]


@strawberry.type
class Mutation:
    @strawberry.mutation
    @savepoint
    async def write(self, info: strawberry.Info, name: str, fail: str = "") -> Result:
        await info.context.session.execute(
            text("INSERT INTO categories (name) VALUES (:n)"), {"n": name}
        )
        after_commit(info, print, "never printed")
        if fail == "declared":
            raise NotFound("Thing", 1)
        if fail == "undeclared":
            raise Duplicate("Thing", "name", name)
        return Written(name=name)


@strawberry.type
class Query:
    ok: bool = True


SCHEMA = strawberry.Schema(query=Query, mutation=Mutation)
WRITE = "mutation ($n: String!, $f: String!) { write(name: $n, fail: $f) { __typename } }"


async def _names(session: AsyncSession) -> list[str]:
    return list(
        (await session.execute(text("SELECT name FROM categories ORDER BY name"))).scalars()
    )


async def test_a_declared_failure_is_typed_and_undoes_writes_and_after_commit_work(
    session: AsyncSession,
) -> None:
    # given
    context = Toy(session)
    await session.begin()
    # when: one mutation that succeeds, then one that fails with a declared error
    ok = await SCHEMA.execute(WRITE, {"n": "kept", "f": ""}, context_value=context)
    failed = await SCHEMA.execute(WRITE, {"n": "undone", "f": "declared"}, context_value=context)
    # then
    assert ok.data == {"write": {"__typename": "Written"}}
    assert failed.data == {"write": {"__typename": "NotFoundError"}}
    assert failed.errors is None
    assert await _names(session) == ["kept"]
    assert len(context.after_commit) == 1  # the first mutation's only
    await session.rollback()


async def test_an_undeclared_failure_propagates(session: AsyncSession) -> None:
    # given
    context = Toy(session)
    await session.begin()
    # when
    result = await SCHEMA.execute(WRITE, {"n": "x", "f": "undeclared"}, context_value=context)
    # then: an error, not a typed result (the request's boundary then rolls back)
    assert result.data is None
    assert [error.message for error in result.errors or []] == [
        "a Thing with name 'x' already exists"
    ]
    await session.rollback()

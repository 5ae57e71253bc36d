"""The Redis round trips of one GraphQL request, counted and optionally reported."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from strawberry.extensions import SchemaExtension

from app.cache import count_round_trips

if TYPE_CHECKING:
    from schema.context import Context


class RedisRoundTrips(SchemaExtension):
    """Counts the Redis round trips of a request; reported with `expose_sql_count`."""

    trips: int = 0

    async def on_operation(self) -> AsyncIterator[None]:
        with count_round_trips() as counter:
            yield
        self.trips = counter.value

    def get_results(self) -> dict[str, object]:
        context: Context = self.execution_context.context
        if context.settings.expose_sql_count:
            return {"redisRoundTrips": self.trips}
        return {}

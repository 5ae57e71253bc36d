"""Per-request DataLoaders; `Loaders` is built fresh for each GraphQL request."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass
class Loaders:
    session: AsyncSession

    @classmethod
    def build(cls, session: AsyncSession) -> Loaders:
        return cls(session=session)

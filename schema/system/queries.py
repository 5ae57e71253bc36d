"""Server information queries."""

from __future__ import annotations

import strawberry

from app import __version__


@strawberry.type
class SystemQuery:
    @strawberry.field(description="Herald's version.")
    def version(self) -> str:
        return __version__

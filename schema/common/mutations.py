"""What every mutation does besides its own work: a savepoint, typed errors, after-commit work.

A mutation is decorated with `@savepoint` and writes only its own steps: the helper runs it
in a savepoint of the request's transaction and turns a domain error into the typed GraphQL
error its result union lists (`NotFound` → `NotFoundError`, …), with everything the
mutation wrote, the changes its services recorded (app/changes) and the after-commit work
it asked for, undone. Errors its union does not list propagate (unexpected: masked, and the
whole request rolls back).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from app.changes import nested
from app.errors import DomainError
from schema.common.errors import TYPED
from schema.context import Info

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def _declared(resolver: Callable[..., Any]) -> dict[type[DomainError], Any]:
    """Domain error → typed error, for the typed errors of the resolver's result union."""
    returned = typing.get_type_hints(resolver, include_extras=True)["return"]
    union = (
        typing.get_args(returned)[0]
        if typing.get_origin(returned) is typing.Annotated
        else returned
    )
    members = set(typing.get_args(union))
    return {domain: typed for domain, typed in TYPED.items() if typed in members}


def savepoint(resolver: F) -> F:
    """Run the mutation in a savepoint; return the typed errors its union declares."""
    declared: dict[type[DomainError], Any] | None = None

    @functools.wraps(resolver)
    async def run(*args: Any, **kwargs: Any) -> Any:
        nonlocal declared
        if declared is None:
            declared = _declared(resolver)
        context = kwargs["info"].context
        asked = len(context.after_commit)
        try:
            async with nested(context.session):
                return await resolver(*args, **kwargs)
        except DomainError as exc:
            typed = declared.get(type(exc))
            if typed is None:
                raise
            del context.after_commit[asked:]  # the work it asked for goes with its writes
            return typed.of(exc)

    return run  # type: ignore[return-value]


def after_commit(info: Info, action: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """`action(*args, **kwargs)` once the request's transaction is durable (enqueueing jobs,
    announcing a change); dropped on rollback. An awaitable it returns is awaited."""

    async def run() -> None:
        result = action(*args, **kwargs)
        if inspect.isawaitable(result):
            await result

    info.context.on_commit(run)

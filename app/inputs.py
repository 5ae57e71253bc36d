"""Bounds on what clients send, shared by the domain services and the request pipeline.

An API open to the internet refuses oversized input before storing it: every page that
shows a value grows with it, and every later read pays for it again.
"""

from __future__ import annotations

from typing import Literal

from app.errors import InvalidInput


def check_text(field: str, value: str | None, limit: int) -> str:
    """A required text: trimmed, not empty, at most `limit` characters."""
    text = (value or "").strip()
    if not text:
        raise InvalidInput(field, f"{field} cannot be empty")
    return check_length(field, text, limit)


def check_length(field: str, value: str, limit: int) -> str:
    """A text of at most `limit` characters, as given."""
    if len(value) > limit:
        raise InvalidInput(field, f"{field} must be at most {limit} characters, got {len(value)}")
    return value


def json_excess(
    value: object, max_depth: int, max_entries: int, max_items: int | None = None
) -> Literal["depth", "entries", "items"] | None:
    """Which bound a decoded JSON value passes, if any: more than `max_depth` nested objects
    or arrays, more than `max_entries` members and items in all, or an array of more than
    `max_items` items.

    Walked level by level rather than recursively, and stopped at the first level over a
    bound, so the walk costs at most about `max_entries` steps however large the value.
    """
    level = [value] if isinstance(value, dict | list) else []
    depth = entries = 0
    while level:
        depth += 1
        if depth > max_depth:
            return "depth"
        children: list[object] = []
        for container in level:
            if isinstance(container, dict):
                children.extend(container.values())
            elif max_items is not None and len(container) > max_items:
                return "items"
            else:
                children.extend(container)
        entries += len(children)
        if entries > max_entries:
            return "entries"
        level = [child for child in children if isinstance(child, dict | list)]
    return None

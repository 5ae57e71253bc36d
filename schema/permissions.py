"""Field permission classes: viewer reads, editor writes, admin runs campaigns and keys.

A refused field resolves to an error (code UNAUTHENTICATED or FORBIDDEN) and no data;
for a non-null field the null propagates, so nothing of the protected value leaks.
"""

from __future__ import annotations

from typing import Any, ClassVar

from graphql import GraphQLError
from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension

from app.models import ApiKeyRole
from schema.context import Info


class UnauthenticatedError(GraphQLError):
    def __init__(self, presented: bool) -> None:
        message = (
            "invalid or revoked API key"
            if presented
            else "an API key is required: send `Authorization: Bearer <key>`"
        )
        super().__init__(message, extensions={"code": "UNAUTHENTICATED"})


class ForbiddenError(GraphQLError):
    def __init__(self, required: ApiKeyRole, role: ApiKeyRole) -> None:
        super().__init__(
            f"this operation needs the {required.value} role; your key has {role.value}",
            extensions={"code": "FORBIDDEN", "requiredRole": required.value},
        )


class _RolePermission(BasePermission):
    required: ClassVar[ApiKeyRole]

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        auth = info.context.auth
        caller = await auth.caller()
        if caller is None:
            raise UnauthenticatedError(auth.presented)
        if not caller.can(self.required):
            raise ForbiddenError(self.required, caller.role)
        return True


class IsViewer(_RolePermission):
    """Any valid key: reads."""

    required = ApiKeyRole.VIEWER


class IsEditor(_RolePermission):
    """Editor or admin: writes to contacts, categories and campaigns."""

    required = ApiKeyRole.EDITOR


class IsAdmin(_RolePermission):
    """Admin only: campaign lifecycle, API keys, cache metrics."""

    required = ApiKeyRole.ADMIN


def viewer() -> list[FieldExtension]:
    """`extensions=viewer()` on a field: the schema shows `@IsViewer` next to it."""
    return [PermissionExtension([IsViewer()])]


def editor() -> list[FieldExtension]:
    return [PermissionExtension([IsEditor()])]


def admin() -> list[FieldExtension]:
    return [PermissionExtension([IsAdmin()])]

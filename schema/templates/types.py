"""GraphQL types of the templates domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from app.templates.service import placeholders
from schema.common.enums import ParameterSource, TemplateCategory, TemplateStatus
from schema.common.ids import global_id
from schema.common.node import Node


@strawberry.type(
    name="Template",
    description="A message template of the WhatsApp Business Account, as last synced "
    "(`herald templates sync`) or reported by WhatsApp's status webhook.",
)
class TemplateType(Node):
    # Herald's key of a synced template (its pages' cursors), None for one not synced: its
    # identity is its name and language (`template_id`), so it has no `databaseId`.
    database_id: strawberry.Private[int | None]
    name: str = strawberry.field(description="The template's name in WhatsApp.")
    language: str = strawberry.field(description='Its language code, e.g. "en_US".')
    status: TemplateStatus = strawberry.field(
        description="Only APPROVED templates are sent. UNKNOWN: a template Herald has not "
        "synced, or a status it does not know yet."
    )
    category: TemplateCategory = strawberry.field(
        description="How WhatsApp bills and limits its messages; the per-user marketing limit "
        "(131049) applies to MARKETING ones only."
    )
    body: str = strawberry.field(description="Text with {{1}}-style or named variables.")
    parameter_count: int = strawberry.field(description="Placeholders in the body.")
    placeholders: list[str] = strawberry.field(
        description='The body\'s placeholders in the order their values are sent ("1", "2" '
        'or "first_name"): a campaign\'s templateParameters fill them in this order.'
    )
    reason: str | None = strawberry.field(
        description="WhatsApp's reason for the status (a rejection's, a pause's), if it gave one."
    )
    components: JSON = strawberry.field(
        description="Header, body, footer and buttons, as the Cloud API describes them."
    )
    whatsapp_id: str | None = strawberry.field(
        description="WhatsApp's id of the template; null when Herald has not synced it."
    )
    updated_at: datetime | None = strawberry.field(
        description="When Herald last stored a change of it; null when not synced."
    )

    @classmethod
    def from_row(cls, row: Any) -> TemplateType:
        return cls(
            id=template_id(row.name, row.language),
            database_id=row.id,
            name=row.name,
            language=row.language,
            status=TemplateStatus.of(row.status),
            category=TemplateCategory.of(row.category),
            body=row.body,
            parameter_count=row.parameter_count,
            placeholders=placeholders(row.body),
            reason=row.reason,
            components=row.components,
            whatsapp_id=row.whatsapp_id,
            updated_at=row.updated_at,
        )

    @classmethod
    def unsynced(cls, name: str, language: str, body: str) -> TemplateType:
        """A campaign's template Herald has no row of (a campaign older than the sync)."""
        names = placeholders(body)
        return cls(
            id=template_id(name, language),
            database_id=None,
            name=name,
            language=language,
            status=TemplateStatus.UNKNOWN,
            category=TemplateCategory.UNKNOWN,
            body=body,
            parameter_count=len(names),
            placeholders=names,
            reason=None,
            components=JSON([]),
            whatsapp_id=None,
            updated_at=None,
        )


def template_id(name: str, language: str) -> strawberry.ID:
    """A template's global id: WhatsApp knows it by name and language (a campaign of a
    template Herald has not synced names it so too), not by Herald's key."""
    return global_id("Template", f"{name}:{language}")


def template_key(key: str) -> tuple[str, str] | None:
    """(name, language) of a template's key text; None when it names none."""
    name, colon, language = key.rpartition(":")
    return (name, language) if colon and name and language else None


@strawberry.type(description="Where a campaign takes one body parameter's value.")
class TemplateParameter:
    source: ParameterSource
    value: str | None = strawberry.field(
        description="The attribute's key (ATTRIBUTE) or the text itself (TEXT)."
    )


@strawberry.input(description="Where to take one body parameter's value, for every contact.")
class TemplateParameterInput:
    source: ParameterSource
    value: str | None = strawberry.field(
        default=None,
        description="ATTRIBUTE: the attribute's key; TEXT: the text sent to everyone; none "
        "for NAME and PHONE.",
    )

"""Typed GraphQL errors shared by mutations, each built from its domain error."""

from __future__ import annotations

from typing import Any

import strawberry

from app import errors
from schema.common.enums import CampaignStatus, TemplateStatus
from schema.common.ids import reported


@strawberry.interface(description="An expected failure; nothing the mutation did was written.")
class Error:
    message: str


@strawberry.type
class NotFoundError(Error):
    entity: str
    id: strawberry.ID

    @classmethod
    def of(cls, exc: errors.NotFound) -> NotFoundError:
        return cls(message=exc.message, entity=exc.entity, id=reported(exc.entity, exc.id))


@strawberry.type
class InvalidInputError(Error):
    field: str

    @classmethod
    def of(cls, exc: errors.InvalidInput) -> InvalidInputError:
        return cls(message=exc.message, field=exc.field)


@strawberry.type
class InvalidPhoneError(Error):
    phone: str

    @classmethod
    def of(cls, exc: errors.InvalidPhone) -> InvalidPhoneError:
        return cls(message=exc.message, phone=exc.phone)


@strawberry.type
class DuplicateError(Error):
    entity: str
    field: str
    value: str

    @classmethod
    def of(cls, exc: errors.Duplicate) -> DuplicateError:
        return cls(message=exc.message, entity=exc.entity, field=exc.field, value=exc.value)


@strawberry.type(description="The campaign's status forbids the operation.")
class InvalidStateError(Error):
    entity: str
    id: strawberry.ID
    state: CampaignStatus = strawberry.field(description="The campaign's status now.")

    @classmethod
    def of(cls, exc: errors.InvalidState) -> InvalidStateError:
        return cls(
            message=exc.message, entity=exc.entity, id=reported(exc.entity, exc.id), state=exc.state
        )


@strawberry.type(
    description="Campaigns that may still send (scheduled, sending or paused) target the "
    "category; cancel them or change their targets first."
)
class CategoryInUseError(Error):
    id: strawberry.ID
    campaign_ids: list[strawberry.ID]

    @classmethod
    def of(cls, exc: errors.CategoryInUse) -> CategoryInUseError:
        ids = [strawberry.ID(campaign_id) for campaign_id in exc.campaign_ids]
        return cls(message=exc.message, id=strawberry.ID(exc.id), campaign_ids=ids)


@strawberry.type(description="No synced template has this name and language.")
class TemplateNotFoundError(Error):
    name: str
    language: str

    @classmethod
    def of(cls, exc: errors.TemplateNotFound) -> TemplateNotFoundError:
        return cls(message=exc.message, name=exc.name, language=exc.language)


@strawberry.type(description="The template is not APPROVED: WhatsApp would not send it now.")
class TemplateNotApprovedError(Error):
    name: str
    language: str
    status: TemplateStatus

    @classmethod
    def of(cls, exc: errors.TemplateNotApproved) -> TemplateNotApprovedError:
        status = TemplateStatus.of(exc.status)
        return cls(message=exc.message, name=exc.name, language=exc.language, status=status)


@strawberry.type(
    description="The campaign cannot fill the template: a parameter without a source, a "
    "source too many, or a header or button that needs a value of its own."
)
class TemplateParametersError(Error):
    name: str
    language: str
    parameter_count: int = strawberry.field(description="Placeholders in the template's body.")

    @classmethod
    def of(cls, exc: errors.TemplateParameters) -> TemplateParametersError:
        return cls(
            message=exc.message,
            name=exc.name,
            language=exc.language,
            parameter_count=exc.parameter_count,
        )


# Domain error → its typed GraphQL error (schema/common/mutations.py returns them).
TYPED: dict[type[errors.DomainError], Any] = {
    errors.NotFound: NotFoundError,
    errors.InvalidInput: InvalidInputError,
    errors.InvalidPhone: InvalidPhoneError,
    errors.Duplicate: DuplicateError,
    errors.InvalidState: InvalidStateError,
    errors.CategoryInUse: CategoryInUseError,
    errors.TemplateNotFound: TemplateNotFoundError,
    errors.TemplateNotApproved: TemplateNotApprovedError,
    errors.TemplateParameters: TemplateParametersError,
}

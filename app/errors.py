"""Domain errors: expected failures raised by services, mapped to typed GraphQL errors."""

from __future__ import annotations

from app.models.enums import CampaignStatus


class DomainError(Exception):
    """An expected failure; the request's changes made since the mutation began are undone."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    def __init__(self, entity: str, id: int | str) -> None:
        super().__init__(f"{entity} {id} does not exist")
        self.entity = entity
        self.id = str(id)


class InvalidInput(DomainError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class InvalidPhone(DomainError):
    def __init__(self, phone: str) -> None:
        super().__init__(f"{phone!r} is not a valid phone number")
        self.phone = phone


class Duplicate(DomainError):
    def __init__(self, entity: str, field: str, value: str) -> None:
        super().__init__(f"a {entity} with {field} {value!r} already exists")
        self.entity = entity
        self.field = field
        self.value = value


class InvalidState(DomainError):
    """The campaign's status forbids the operation (e.g. editing a sent campaign)."""

    def __init__(self, entity: str, id: int, state: str, message: str) -> None:
        super().__init__(message)
        self.entity = entity
        self.id = str(id)
        self.state = CampaignStatus(state)


class CategoryInUse(DomainError):
    """Campaigns that may still send (scheduled, sending, paused) target the category."""

    def __init__(self, category_id: int, campaign_ids: list[int]) -> None:
        ids = ", ".join(str(campaign_id) for campaign_id in campaign_ids)
        super().__init__(
            f"category {category_id} is targeted by active campaign(s) {ids}; "
            "cancel them or change their targets first"
        )
        self.id = str(category_id)
        self.campaign_ids = [str(campaign_id) for campaign_id in campaign_ids]


class TemplateNotFound(DomainError):
    """No synced template has this name and language (`herald templates sync` brings them)."""

    def __init__(self, name: str, language: str) -> None:
        super().__init__(
            f"no template {name!r} in language {language!r} is synced from the WhatsApp "
            "Business Account: create it there, then run `herald templates sync`"
        )
        self.name = name
        self.language = language


class TemplateNotApproved(DomainError):
    """The template exists but WhatsApp would refuse to send it now."""

    def __init__(self, name: str, language: str, status: str) -> None:
        super().__init__(
            f"template {name!r} ({language}) is {status}, not APPROVED: WhatsApp sends only "
            "approved templates. Once it is approved again (a status webhook, or `herald "
            "templates sync`), try again."
        )
        self.name = name
        self.language = language
        self.status = status


class TemplateParameters(DomainError):
    """The campaign cannot fill the template's parameters (count, kind, or components)."""

    def __init__(self, name: str, language: str, parameter_count: int, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.language = language
        self.parameter_count = parameter_count

"""Domain errors: expected failures raised by services, mapped to typed GraphQL errors."""

from __future__ import annotations


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
    """The entity's current state forbids the operation (e.g. editing a sent campaign)."""

    def __init__(self, entity: str, id: int, state: str, message: str) -> None:
        super().__init__(message)
        self.entity = entity
        self.id = str(id)
        self.state = state

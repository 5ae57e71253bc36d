"""importContacts: up to Settings.import_max_rows contacts written by one set-based statement.

Rows are validated one by one; bad rows are reported by index and skipped, the valid ones
are kept. Only a problem with the whole call (too many rows, unknown category or region)
fails it, and then nothing is written.
"""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from app.contacts.service import ContactService, ImportRowErrorReason
from app.contacts.service import ImportRowError as RowError
from app.turns import built_in_turns
from schema.common.errors import InvalidInputError, NotFoundError
from schema.common.ids import parse_id
from schema.common.inputs import built_directly
from schema.common.mutations import savepoint
from schema.contacts.types import ContactType
from schema.context import Info
from schema.permissions import editor

strawberry.enum(ImportRowErrorReason)  # registered in place, as in schema/common/enums.py


@built_directly  # thousands per call
@strawberry.input
class ContactImportRow:
    phone: str
    name: str | None = None
    attributes: JSON | None = None


@built_directly  # its rows built as one plain list
@strawberry.input
class ImportContactsInput:
    rows: list[ContactImportRow] = strawberry.field(
        description="At most 10,000 (Settings.import_max_rows)."
    )
    default_region: str | None = strawberry.field(
        default=None, description='ISO 3166 region for national numbers, e.g. "FR".'
    )
    category_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list, description="Every created or updated contact joins these."
    )
    update_existing: bool = strawberry.field(
        default=False,
        description="Known phones: false skips them (ALREADY_EXISTS); true updates their "
        "name (when given) and merges their attributes.",
    )


@strawberry.type(description="A row that was skipped, and why; the other rows were kept.")
class ImportRowError:
    index: int = strawberry.field(description="Position in `rows`, from 0.")
    phone: str = strawberry.field(description="As submitted.")
    reason: ImportRowErrorReason
    message: str

    @classmethod
    def of(cls, error: RowError) -> ImportRowError:
        return cls(index=error.index, phone=error.phone, reason=error.reason, message=error.message)


@strawberry.type
class ImportContactsSuccess:
    created: int
    updated: int
    contacts: list[ContactType] = strawberry.field(description="Created or updated, input order.")
    errors: list[ImportRowError] = strawberry.field(description="Skipped rows, by index.")


ImportContactsResult = Annotated[
    ImportContactsSuccess | InvalidInputError | NotFoundError,
    strawberry.union("ImportContactsResult"),
]


@strawberry.type
class ImportContactsMutation:
    @strawberry.mutation(
        description="Bulk-create contacts; per-row errors do not fail the call.",
        extensions=editor(),
    )
    @savepoint
    async def import_contacts(self, info: Info, input: ImportContactsInput) -> ImportContactsResult:
        category_ids = [parse_id(i, "Category", "categoryIds") for i in input.category_ids]
        service = ContactService(info.context.session, info.context.settings.import_max_rows)
        result = await service.import_rows(
            input.rows, input.default_region, category_ids, input.update_existing
        )
        # 10,000 contacts take tens of ms to build: in turns, like the rows' checks.
        return ImportContactsSuccess(
            created=result.created,
            updated=result.updated,
            contacts=await built_in_turns(result.contacts, ContactType.from_row),
            errors=await built_in_turns(result.errors, ImportRowError.of),
        )

"""verifyContacts: ask the provider which numbers are on WhatsApp (run by workers)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.contacts.service import ContactVerificationService, chunks
from schema.common.errors import InvalidInputError, NotFoundError
from schema.common.ids import parse_id
from schema.common.mutations import after_commit, savepoint
from schema.context import Info
from schema.permissions import editor

MAX_IDS = 10_000


@strawberry.type
class VerifyContactsSuccess:
    queued: int = strawberry.field(description="Contacts whose check was enqueued.")


VerifyContactsResult = Annotated[
    VerifyContactsSuccess | NotFoundError | InvalidInputError,
    strawberry.union("VerifyContactsResult"),
]


@strawberry.type
class VerifyContactsMutation:
    @strawberry.mutation(
        description="Check WhatsApp availability of the given contacts (default: every "
        "contact never checked); whatsappStatus is updated as the checks complete.",
        extensions=editor(),
    )
    @savepoint
    async def verify_contacts(
        self, info: Info, contact_ids: list[strawberry.ID] | None = None
    ) -> VerifyContactsResult:
        ids = (
            None
            if contact_ids is None
            else [parse_id(i, "Contact", "contactIds") for i in contact_ids]
        )
        targets = await ContactVerificationService(info.context.session).to_verify(ids, MAX_IDS)
        verify = info.context.jobs.verify_contacts
        for chunk in chunks(targets):
            after_commit(info, verify, chunk)
        return VerifyContactsSuccess(queued=len(targets))

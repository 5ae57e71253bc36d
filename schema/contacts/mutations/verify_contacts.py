"""verifyContacts: ask the provider which numbers are on WhatsApp (run by workers)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.contacts.dispatch_service import ContactVerificationService, chunks
from app.dispatch.jobs import jobs_for
from app.errors import InvalidInput, NotFound
from schema.common.errors import InvalidInputError, NotFoundError
from schema.common.pagination import parse_id
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
    async def verify_contacts(
        self, info: Info, contact_ids: list[strawberry.ID] | None = None
    ) -> VerifyContactsResult:
        ids = None if contact_ids is None else [parse_id(i, "contactIds") for i in contact_ids]
        try:
            async with info.context.session.begin_nested():
                targets = await ContactVerificationService(info.context.session).to_verify(
                    ids, MAX_IDS
                )
        except NotFound as exc:
            return NotFoundError.of(exc)
        except InvalidInput as exc:
            return InvalidInputError.of(exc)
        jobs = jobs_for(info.context.settings)

        async def enqueue() -> None:
            for chunk in chunks(targets):
                jobs.verify_contacts(chunk)

        info.context.on_commit(enqueue)
        return VerifyContactsSuccess(queued=len(targets))

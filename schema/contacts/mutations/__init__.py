"""One GraphQL mutation per module; `ContactMutation` merges them."""

from __future__ import annotations

from strawberry.tools import merge_types

from schema.contacts.mutations.add_contacts_to_category import AddContactsToCategoryMutation
from schema.contacts.mutations.create_contact import CreateContactMutation
from schema.contacts.mutations.delete_contact import DeleteContactMutation
from schema.contacts.mutations.import_contacts import ImportContactsMutation
from schema.contacts.mutations.remove_contacts_from_category import (
    RemoveContactsFromCategoryMutation,
)
from schema.contacts.mutations.update_contact import UpdateContactMutation
from schema.contacts.mutations.verify_contacts import VerifyContactsMutation

ContactMutation = merge_types(
    "ContactMutation",
    (
        CreateContactMutation,
        UpdateContactMutation,
        DeleteContactMutation,
        ImportContactsMutation,
        AddContactsToCategoryMutation,
        RemoveContactsFromCategoryMutation,
        VerifyContactsMutation,
    ),
)

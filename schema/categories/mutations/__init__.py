"""One GraphQL mutation per module; `CategoryMutation` merges them."""

from __future__ import annotations

from strawberry.tools import merge_types

from schema.categories.mutations.create_category import CreateCategoryMutation
from schema.categories.mutations.delete_category import DeleteCategoryMutation
from schema.categories.mutations.update_category import UpdateCategoryMutation

CategoryMutation = merge_types(
    "CategoryMutation", (CreateCategoryMutation, UpdateCategoryMutation, DeleteCategoryMutation)
)

"""The per-request set of DataLoaders, built fresh for each GraphQL request.

Each loader is created on first use, so a request pays only for the ones it needs.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from loaders.api_keys import ApiKeyByIdLoader
from loaders.base import Types
from loaders.campaigns import CampaignByIdLoader, StatsByCampaignIdLoader
from loaders.categories import (
    CategoriesByCampaignIdLoader,
    CategoriesByContactIdLoader,
    CategoryByIdLoader,
    ContactCountByCategoryIdLoader,
)
from loaders.contacts import ContactByIdLoader, ContactPageByCategoryIdLoader
from loaders.messages import (
    InteractionByIdLoader,
    InteractionsByContactIdLoader,
    MessageBuilder,
    MessageByIdLoader,
    MessageCountByCampaignIdLoader,
    MessageCountByContactIdLoader,
    MessagePageByCampaignIdLoader,
    MessagePageByContactIdLoader,
)
from loaders.senders import SenderNumberByIdLoader
from loaders.templates import TemplateByNameLanguageLoader


class Loaders:
    # DataLoader options of every loader (batching and a per-request memo by default).
    options: dict[str, Any] = {}

    def __init__(self, session: AsyncSession, types: Types) -> None:
        self.session = session
        self.types = types

    def renewed(self) -> Loaders:
        """Loaders of the same session that remember nothing loaded so far (each event of a
        subscription reads afresh)."""
        return type(self)(self.session, self.types)

    @cached_property
    def messages(self) -> MessageBuilder:
        """How pages of messages are built (every message page of the request)."""
        return MessageBuilder(self.session, self.types)

    @cached_property
    def campaign_by_id(self) -> CampaignByIdLoader:
        return CampaignByIdLoader(self.session, self.types, **self.options)

    @cached_property
    def stats_by_campaign_id(self) -> StatsByCampaignIdLoader:
        return StatsByCampaignIdLoader(self.session, self.types, **self.options)

    @cached_property
    def sender_number_by_id(self) -> SenderNumberByIdLoader:
        return SenderNumberByIdLoader(self.session, self.types, **self.options)

    @cached_property
    def category_by_id(self) -> CategoryByIdLoader:
        return CategoryByIdLoader(self.session, self.types, **self.options)

    @cached_property
    def categories_by_contact_id(self) -> CategoriesByContactIdLoader:
        return CategoriesByContactIdLoader(self.session, self.types, **self.options)

    @cached_property
    def categories_by_campaign_id(self) -> CategoriesByCampaignIdLoader:
        return CategoriesByCampaignIdLoader(self.session, self.types, **self.options)

    @cached_property
    def contact_count_by_category_id(self) -> ContactCountByCategoryIdLoader:
        return ContactCountByCategoryIdLoader(self.session, self.types, **self.options)

    @cached_property
    def contact_by_id(self) -> ContactByIdLoader:
        return ContactByIdLoader(self.session, self.types, **self.options)

    @cached_property
    def contact_page_by_category_id(self) -> ContactPageByCategoryIdLoader:
        return ContactPageByCategoryIdLoader(self.session, self.types, **self.options)

    @cached_property
    def message_page_by_campaign_id(self) -> MessagePageByCampaignIdLoader:
        return MessagePageByCampaignIdLoader(
            self.session, self.types, self.messages, **self.options
        )

    @cached_property
    def message_page_by_contact_id(self) -> MessagePageByContactIdLoader:
        return MessagePageByContactIdLoader(self.session, self.types, self.messages, **self.options)

    @cached_property
    def message_by_id(self) -> MessageByIdLoader:
        return MessageByIdLoader(self.session, self.types, **self.options)

    @cached_property
    def message_count_by_campaign_id(self) -> MessageCountByCampaignIdLoader:
        return MessageCountByCampaignIdLoader(self.session, self.types, **self.options)

    @cached_property
    def message_count_by_contact_id(self) -> MessageCountByContactIdLoader:
        return MessageCountByContactIdLoader(self.session, self.types, **self.options)

    @cached_property
    def interaction_by_id(self) -> InteractionByIdLoader:
        return InteractionByIdLoader(self.session, self.types, **self.options)

    @cached_property
    def api_key_by_id(self) -> ApiKeyByIdLoader:
        return ApiKeyByIdLoader(self.session, self.types, **self.options)

    @cached_property
    def interactions_by_contact_id(self) -> InteractionsByContactIdLoader:
        return InteractionsByContactIdLoader(self.session, self.types, **self.options)

    @cached_property
    def template_by_name_language(self) -> TemplateByNameLanguageLoader:
        return TemplateByNameLanguageLoader(self.session, self.types, **self.options)

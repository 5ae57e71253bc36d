"""Builders that insert realistic rows directly, for arranging test data quickly."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    Campaign,
    CampaignStatus,
    Category,
    Contact,
    Interaction,
    InteractionKind,
    Message,
    MessageStatus,
    Template,
    TemplateCategory,
    TemplateStatus,
    campaign_categories,
    category_contacts,
)
from app.templates.service import placeholders


async def contacts(session: AsyncSession, count: int, start: int = 0, **values: Any) -> list[int]:
    """`count` contacts with distinct valid French mobile numbers."""
    rows = [
        {
            "phone": f"+336{10_000_000 + start + i:08d}",
            "name": f"Contact {start + i}",
            "attributes": {"first_name": f"C{start + i}"},
            **values,
        }
        for i in range(count)
    ]
    result = await session.execute(insert(Contact).returning(Contact.id), rows)
    return list(result.scalars())


async def category(session: AsyncSession, name: str, members: Sequence[int] = ()) -> int:
    category_id = (
        await session.execute(insert(Category).values(name=name).returning(Category.id))
    ).scalar_one()
    if members:
        await session.execute(
            insert(category_contacts),
            [{"category_id": category_id, "contact_id": c} for c in members],
        )
    return category_id


async def template(
    session: AsyncSession,
    name: str = "spring_sale",
    language: str = "en",
    body: str = "",
    status: TemplateStatus = TemplateStatus.APPROVED,
    category: TemplateCategory = TemplateCategory.MARKETING,
    **values: Any,
) -> int:
    """A synced template (left as it is when one of that name and language exists)."""
    components = [{"type": "BODY", "text": body}, *values.pop("components", [])]
    stmt = (
        pg_insert(Template)
        .values(
            name=name,
            language=language,
            body=body,
            status=status.value,
            category=category.value,
            components=components,
            parameter_count=len(placeholders(body)),
            whatsapp_id=f"wa-{name}-{language}",
            **values,
        )
        .on_conflict_do_nothing()
        .returning(Template.id)
    )
    found = (await session.execute(stmt)).scalar()
    if found is not None:
        return int(found)
    existing = select(Template.id).where(Template.name == name, Template.language == language)
    return int((await session.execute(existing)).scalar_one())


async def campaign(
    session: AsyncSession,
    name: str = "Spring sale",
    status: CampaignStatus = CampaignStatus.DRAFT,
    targets: Sequence[int] = (),
) -> int:
    """A campaign of the approved template spring_sale (en), inserted with it if new."""
    await template(session)
    campaign_id = (
        await session.execute(
            insert(Campaign)
            .values(name=name, template_name="spring_sale", template_language="en", status=status)
            .returning(Campaign.id)
        )
    ).scalar_one()
    if targets:
        await session.execute(
            insert(campaign_categories),
            [{"campaign_id": campaign_id, "category_id": c} for c in targets],
        )
    return campaign_id


async def messages(
    session: AsyncSession,
    campaign_id: int,
    contact_ids: Sequence[int],
    status: MessageStatus = MessageStatus.SENT,
    **values: Any,
) -> list[int]:
    """One message per contact; `values` sets more columns (`sent_at`, `read_at`, …)."""
    rows = [
        {"campaign_id": campaign_id, "contact_id": c, "status": status, **values}
        for c in contact_ids
    ]
    result = await session.execute(insert(Message).returning(Message.id), rows)
    return list(result.scalars())


async def interactions(
    session: AsyncSession, message_ids: Sequence[int], kind: InteractionKind = InteractionKind.REPLY
) -> None:
    await session.execute(
        insert(Interaction),
        [{"message_id": m, "kind": kind, "payload": {"text": "hi"}} for m in message_ids],
    )


async def count(session: AsyncSession, model: Any) -> int:
    from sqlalchemy import func

    return (await session.execute(select(func.count()).select_from(model))).scalar_one()

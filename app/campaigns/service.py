"""Campaign rules: what a draft may change, which states allow retargeting, and the
lifecycle transitions (start, pause, ...) that drive dispatch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.repository import CampaignRepository
from app.categories.repository import CategoryRepository
from app.changes import Paused, changes_of
from app.errors import InvalidInput, InvalidState, NotFound
from app.inputs import check_text
from app.messages.repository import MessageRepository
from app.models import CampaignStatus, ParameterSource
from app.templates.service import STATUS_OF_ERROR, TemplateService, parameter_columns
from app.whatsapp.errors import MARKETING_LIMITED, PauseReason, classify, pause_reason

S = CampaignStatus
EDITABLE = (S.DRAFT,)  # update, delete: once scheduled or sent, the campaign is a record
RETARGETABLE = (S.DRAFT, S.SCHEDULED)  # targets are resolved into messages at start
NAME_MAX = 200  # campaigns.name is VARCHAR(200)
TEMPLATE_NAME_MAX = 512  # WhatsApp's cap on a template name; campaigns.template_name too
MAX_TARGETS = 1_000
# Leaving `paused` (resume, cancel) forgets why Herald paused the campaign.
NO_PAUSE_REASON: dict[str, object] = {
    "pause_code": None,
    "pause_error_code": None,
    "pause_message": None,
}
# WhatsApp template language codes: "en", "fr", "en_US", "pt_BR", "zh_Hant" ... (at most 8
# characters, within campaigns.template_language's VARCHAR(16)).
LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Za-z]{2,4})?")


@dataclass(frozen=True)
class TemplateValues:
    """A synced template, by name and language, and how the campaign fills its parameters
    (app/templates/service.py)."""

    name: str
    language: str
    parameters: Sequence[tuple[ParameterSource, str | None]] = ()


class CampaignService:
    """A draft's edits; each records the campaign's change (app/changes)."""

    def __init__(self, session: AsyncSession) -> None:
        self.campaigns = CampaignRepository(session)
        self.categories = CategoryRepository(session)
        self.templates = TemplateService(session)
        self.changes = changes_of(session)

    async def _template_columns(self, template: TemplateValues) -> dict[str, Any]:
        """The campaign's template_* columns, its body from the synced template."""
        if not LANGUAGE.fullmatch(template.language):
            raise InvalidInput(
                "template.language", f"{template.language!r} is not a language code like 'en_US'"
            )
        name = check_text("template.name", template.name, TEMPLATE_NAME_MAX)
        parameters = parameter_columns(template.parameters)
        synced = await self.templates.get(name, template.language)
        return {
            "template_name": name,
            "template_language": template.language,
            "template_body": synced.body,
            "template_parameters": parameters,
        }

    async def create(self, name: str, template: TemplateValues, target_ids: Sequence[int]) -> Row:
        values: dict[str, Any] = {"name": check_text("name", name, NAME_MAX)}
        values.update(await self._template_columns(template))
        targets = self._check_targets(target_ids)
        row = await self.campaigns.insert(values)
        await self._retarget(row.id, targets)
        self.changes.campaign()
        return row

    async def update(
        self, campaign_id: int, name: str | None, template: TemplateValues | None
    ) -> Row:
        """Rename and/or replace the template of a draft (None: leave as is)."""
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = check_text("name", name, NAME_MAX)
        if template is not None:
            values.update(await self._template_columns(template))
        row = await self.campaigns.update_if(campaign_id, EDITABLE, values)
        if row is None:
            raise await self._refusal(campaign_id, "edit")
        self.changes.campaign()
        return row

    async def delete(self, campaign_id: int) -> None:
        if not await self.campaigns.delete_if(campaign_id, EDITABLE):
            raise await self._refusal(campaign_id, "delete")
        self.changes.campaign()

    async def set_targets(self, campaign_id: int, target_ids: Sequence[int]) -> Row:
        """Replace the targets of a draft or scheduled campaign (locked against a start)."""
        targets = self._check_targets(target_ids)
        row = await self.campaigns.get_locked(campaign_id)
        if row is None:
            raise NotFound("Campaign", campaign_id)
        if row.status not in RETARGETABLE:
            raise InvalidState(
                "Campaign", campaign_id, row.status, f"cannot retarget a {row.status} campaign"
            )
        await self._retarget(campaign_id, targets)
        self.changes.campaign()
        return row

    def _check_targets(self, target_ids: Sequence[int]) -> list[int]:
        if len(target_ids) > MAX_TARGETS:
            raise InvalidInput("targetCategoryIds", f"at most {MAX_TARGETS} target categories")
        return list(dict.fromkeys(target_ids))

    async def _retarget(self, campaign_id: int, targets: list[int]) -> None:
        """Unknown categories are refused after the campaign row was written: the savepoint
        undoes that row too."""
        found = await self.categories.existing_ids(targets) if targets else set()
        for category_id in targets:
            if category_id not in found:
                raise NotFound("Category", category_id)
        await self.campaigns.replace_targets(campaign_id, targets)

    async def _refusal(self, campaign_id: int, verb: str) -> NotFound | InvalidState:
        """Why a conditional write matched nothing: the campaign is missing, or not a draft."""
        rows = await self.campaigns.by_ids([campaign_id])
        if not rows:
            return NotFound("Campaign", campaign_id)
        status = rows[0].status
        return InvalidState(
            "Campaign", campaign_id, status, f"cannot {verb} a {status} campaign: only drafts"
        )


@dataclass(frozen=True)
class Retried:
    campaign: Row
    messages: int
    held_back: int  # failed at the per-user marketing limit within 24 hours, left alone


class CampaignDispatchService:
    """Lifecycle transitions; the caller enqueues the work they imply after commit. Each
    records its change (app/changes): lists and the dashboard show the status."""

    def __init__(self, session: AsyncSession) -> None:
        self.campaigns = CampaignRepository(session)
        self.messages = MessageRepository(session)
        self.templates = TemplateService(session)
        self.changes = changes_of(session)

    async def _locked(self, campaign_id: int, allowed: list[CampaignStatus], verb: str) -> Row:
        """The campaign, locked against concurrent transitions, if in an `allowed` state."""
        row = await self.campaigns.get_locked(campaign_id)
        if row is None:
            raise NotFound("Campaign", campaign_id)
        if row.status not in allowed:
            raise InvalidState(
                "Campaign", campaign_id, row.status, f"cannot {verb} a {row.status} campaign"
            )
        return row

    async def _sendable(self, campaign: Row) -> dict[str, Any]:
        """Refuse a template WhatsApp would not send or the campaign cannot fill; else the
        body to send, as approved now."""
        template = await self.templates.sendable(
            campaign.template_name, campaign.template_language, campaign.template_parameters
        )
        return {"template_body": template.body}

    async def _refuse(self, campaign_id: int, verb: str) -> Exception:
        """Why a conditional transition matched nothing: missing, or in the wrong state."""
        row = await self.campaigns.get(campaign_id)
        if row is None:
            return NotFound("Campaign", campaign_id)
        return InvalidState(
            "Campaign", campaign_id, row.status, f"cannot {verb} a {row.status} campaign"
        )

    async def _move(
        self,
        campaign_id: int,
        allowed: list[CampaignStatus],
        to: CampaignStatus,
        verb: str,
        **kw: object,
    ) -> Row:
        row = await self.campaigns.update_if(campaign_id, allowed, {"status": to, **kw})
        if row is None:
            raise await self._refuse(campaign_id, verb)
        self.changes.campaign()
        return row

    async def start(self, campaign_id: int) -> Row:
        allowed = [S.DRAFT, S.SCHEDULED]
        values = await self._sendable(await self._locked(campaign_id, allowed, "start"))
        return await self._move(
            campaign_id, allowed, S.SENDING, "start", started_at=datetime.now(UTC), **values
        )

    async def schedule(self, campaign_id: int, at: datetime) -> Row:
        if at.tzinfo is None:
            raise InvalidInput("at", "the time must include a UTC offset")
        if at <= datetime.now(UTC):
            raise InvalidInput("at", "the time must be in the future")
        allowed = [S.DRAFT, S.SCHEDULED]
        values = await self._sendable(await self._locked(campaign_id, allowed, "schedule"))
        return await self._move(
            campaign_id, allowed, S.SCHEDULED, "schedule", scheduled_at=at, **values
        )

    async def pause(self, campaign_id: int) -> Row:
        row = await self._move(campaign_id, [S.SENDING], S.PAUSED, "pause")
        self.changes.campaign_progress(campaign_id, force=True)
        return row

    async def pause_for_error(self, code: int, template: tuple[str, str]) -> Paused:
        """Pause what a campaign-stopping error touches: the sending campaigns of the
        template (name, language) for a template error, every sending one otherwise. A
        template found paused or disabled is marked so, and its scheduled campaigns are
        paused too: nothing starts on it until WhatsApp approves it again."""
        rule = classify(code)
        reason = pause_reason(code, rule)
        scope = template if rule.template_scoped else None
        statuses = [S.SENDING]
        status = STATUS_OF_ERROR.get(code)
        if status is not None:
            await self.templates.mark(template, status, f"{rule.title} ({code})")
            statuses.append(S.SCHEDULED)
        ids = await self.campaigns.pause_sending(reason.columns(), scope, statuses)
        paused = Paused(reason, ids)
        self.changes.campaigns_paused(paused)
        return paused

    async def pause_bound(
        self, reason: PauseReason, number_id: int | None, campaign_id: int | None = None
    ) -> Paused:
        """Pause the sending campaigns bound to a sender number that takes no traffic (or
        the one campaign that found no usable number)."""
        ids = await self.campaigns.pause_bound(reason.columns(), number_id, campaign_id)
        paused = Paused(reason, ids)
        self.changes.campaigns_paused(paused)
        return paused

    async def resume(self, campaign_id: int) -> Row:
        """paused → sending, or back to scheduled when Herald paused it before its time;
        refused while its template cannot be sent."""
        row = await self._locked(campaign_id, [S.PAUSED], "resume")
        values = await self._sendable(row)
        now = datetime.now(UTC)
        if row.started_at is None and row.scheduled_at is not None and row.scheduled_at > now:
            return await self._move(
                campaign_id, [S.PAUSED], S.SCHEDULED, "resume", **NO_PAUSE_REASON, **values
            )
        started = row.started_at or now
        return await self._move(
            campaign_id,
            [S.PAUSED],
            S.SENDING,
            "resume",
            started_at=started,
            **NO_PAUSE_REASON,
            **values,
        )

    async def cancel(self, campaign_id: int) -> Row:
        row = await self._move(
            campaign_id,
            [S.DRAFT, S.SCHEDULED, S.SENDING, S.PAUSED],
            S.CANCELLED,
            "cancel",
            **NO_PAUSE_REASON,
        )
        # Messages already handed to a worker finish; the rest will never be sent.
        await self.messages.fail_pending(campaign_id, "cancelled")
        self.changes.campaign_progress(campaign_id, force=True)
        return row

    async def retry_failed(self, campaign_id: int, include_marketing_limited: bool) -> Retried:
        """Put failed messages back to pending on purpose: never for undeliverable numbers
        or opted-out contacts, and for messages of a marketing template that met the
        per-user marketing limit (131049) within 24 hours only when asked (re-sent at once,
        they fail again)."""
        row = await self.campaigns.get(campaign_id)
        if row is None:
            raise NotFound("Campaign", campaign_id)
        if row.status not in (S.SENDING, S.PAUSED, S.COMPLETED):
            raise InvalidState(
                "Campaign", campaign_id, row.status, f"cannot retry a {row.status} campaign"
            )
        # The limit applies to marketing messages only: the template's category decides.
        marketing = await self.templates.is_marketing(row.template_name, row.template_language)
        held_code = MARKETING_LIMITED if marketing and not include_marketing_limited else None
        count = await self.messages.retry_failed(campaign_id, held_code)
        held = 0 if held_code is None else await self.messages.held_back(campaign_id, held_code)
        if count and row.status == S.COMPLETED:
            row = await self._move(
                campaign_id, [S.COMPLETED], S.SENDING, "retry", completed_at=None
            )
        self.changes.campaign()
        return Retried(row, count, held)

"""Template rules: what a synced template holds, how a status report is read, and whether a
campaign can send one (approved, and every parameter filled the way the campaign says).

How a campaign fills the body parameters: `template_parameters` lists one source per
placeholder, in the order WhatsApp takes them (`{{1}}`, `{{2}}` ... by number, named ones in
order of appearance): the contact's NAME or PHONE, one of its ATTRIBUTES (by key), or a TEXT
sent as is to everyone. Without a list, each placeholder takes the attribute it names
(`{{first_name}}`), which numbered placeholders cannot: their campaign needs the list.
Headers, buttons and cards that need values of their own are not filled by Herald: a
campaign cannot start on such a template.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidInput, TemplateNotApproved, TemplateNotFound, TemplateParameters
from app.models import ParameterSource, TemplateCategory, TemplateStatus
from app.templates.repository import TemplateRepository
from app.whatsapp.providers import Template

logger = logging.getLogger(__name__)

T = TemplateStatus
# Statuses that stop a template's campaigns, and the Cloud API error a send would meet.
HALTING: dict[TemplateStatus, int] = {T.PAUSED: 132015, T.DISABLED: 132016}
STATUS_OF_ERROR: dict[int, TemplateStatus] = {code: status for status, code in HALTING.items()}
# `message_template_status_update` events that are a status under another name, and those
# that are no status at all: FLAGGED (quality dropping, still approved), LOCKED and
# UNLOCKED (editing), UNARCHIVED (back to a status the event does not say: a sync tells).
EVENT_STATUSES = {"REINSTATED": T.APPROVED.value}
NOT_STATUSES = frozenset({"FLAGGED", "LOCKED", "UNLOCKED", "UNARCHIVED"})
MAX_PARAMETERS = 100
MAX_VALUE = 1_024  # a template's whole body is at most 1,024 characters
_MEDIA = frozenset({"IMAGE", "VIDEO", "DOCUMENT", "LOCATION"})
_VALUED_BUTTONS = frozenset({"COPY_CODE", "OTP", "CATALOG", "MPM"})


def _text(value: Any, limit: int) -> str | None:
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    text = str(value)
    return text if 0 < len(text) <= limit and "\x00" not in text else None


def _word(value: Any) -> str:
    """A status or category as stored: the Cloud API's word, UNKNOWN when there is none."""
    return (_text(value, 32) or T.UNKNOWN.value).upper()


def body_of(components: Sequence[dict[str, Any]]) -> str:
    for component in components:
        if str(component.get("type", "")).upper() == "BODY":
            return str(component.get("text") or "")
    return ""


def placeholders(body: str) -> list[str]:
    return Template("", "", body).variables()


def columns_of(item: dict[str, Any]) -> dict[str, Any] | None:
    """A listed template as the columns of its row; None when it has no name or language."""
    name, language = _text(item.get("name"), 512), _text(item.get("language"), 16)
    if name is None or language is None:
        return None
    listed = item.get("components")
    components = [c for c in listed if isinstance(c, dict)] if isinstance(listed, list) else []
    body = body_of(components)
    reason = _text(item.get("rejected_reason"), 1_000)
    return {
        "whatsapp_id": _text(item.get("id"), 64),
        "name": name,
        "language": language,
        "status": _word(item.get("status")),
        "category": _word(item.get("category")),
        "reason": None if reason in (None, "NONE") else reason,
        "components": components,
        "body": body,
        "parameter_count": len(placeholders(body)),
    }


def unfilled(components: Sequence[dict[str, Any]]) -> str | None:
    """The part of a template that needs values Herald does not send, if any."""
    for component in components:
        kind = str(component.get("type", "")).upper()
        if kind == "HEADER":
            media = str(component.get("format", "TEXT")).upper()
            if media in _MEDIA:
                return f"a media header ({media})"
            if "{{" in str(component.get("text") or ""):
                return "a header variable"
        elif kind == "BUTTONS":
            for button in component.get("buttons") or []:
                kind = str(button.get("type", "")).upper() if isinstance(button, dict) else ""
                url = str(button.get("url") or "") if isinstance(button, dict) else ""
                if kind in _VALUED_BUTTONS or (kind == "URL" and "{{" in url):
                    return f"a {kind} button that needs a value"
        elif kind not in ("BODY", "FOOTER"):
            return f"a {kind} component"
    return None


def refusal(template: Any, parameters: Sequence[dict[str, Any]]) -> str | None:
    """Why a campaign filling `template` with `parameters` cannot send it; None if it can."""
    name = f"template {template.name!r} ({template.language})"
    part = unfilled(template.components)
    if part is not None:
        return f"{name} has {part}, which Herald does not fill: choose another template"
    names = placeholders(template.body)
    shown = ", ".join("{{" + n + "}}" for n in names)
    if parameters and len(parameters) != len(names):
        return (
            f"{name} has {len(names)} body parameters ({shown or 'none'}) and the campaign "
            f"fills {len(parameters)}: give template.parameters one source per placeholder"
        )
    if not parameters and any(n.isdigit() for n in names):
        return (
            f"{name} has numbered parameters ({shown}): give template.parameters a source "
            "for each (the contact's NAME, PHONE, an ATTRIBUTE or a TEXT)"
        )
    return None


def parameter_columns(
    parameters: Sequence[tuple[ParameterSource, str | None]],
) -> list[dict[str, Any]]:
    """Checked parameter sources, as stored in campaigns.template_parameters."""
    if len(parameters) > MAX_PARAMETERS:
        raise InvalidInput("template.parameters", f"at most {MAX_PARAMETERS} parameters")
    stored = []
    for index, (source, value) in enumerate(parameters):
        where = f"template.parameters[{index}].value"
        valued = source in (ParameterSource.ATTRIBUTE, ParameterSource.TEXT)
        if valued and not value:
            raise InvalidInput(where, f"a {source.name} parameter needs a value")
        if not valued and value is not None:
            raise InvalidInput(where, f"a {source.name} parameter takes no value")
        if value is not None and (len(value) > MAX_VALUE or "\x00" in value):
            raise InvalidInput(where, f"at most {MAX_VALUE:,} characters, without NUL")
        stored.append({"source": source.value, "value": value})
    return stored


def parameter_sources(stored: Sequence[dict[str, Any]]) -> tuple[tuple[str, str | None], ...]:
    """Stored parameter sources as the provider's Template takes them."""
    return tuple((item["source"], item.get("value")) for item in stored)


@dataclass
class Synced:
    """What a sync changed."""

    listed: int = 0
    added: int = 0
    changed: int = 0
    deleted: int = 0  # no longer listed: marked DELETED
    skipped: int = 0  # listed without a name or language
    campaigns_paused: int = 0  # by app/templates/tasks.py
    # (name, language) of listed templates paused or disabled, with their status.
    halted: list[tuple[tuple[str, str], TemplateStatus]] = field(default_factory=list)


@dataclass(frozen=True)
class Reported:
    """A status webhook applied to a known template."""

    key: tuple[str, str]
    status: TemplateStatus


class TemplateService:
    def __init__(self, session: AsyncSession) -> None:
        self.templates = TemplateRepository(session)

    async def get(self, name: str, language: str) -> Row:
        row = await self.templates.get(name, language)
        if row is None:
            raise TemplateNotFound(name, language)
        return row

    async def sendable(self, name: str, language: str, parameters: Sequence[dict[str, Any]]) -> Row:
        """The synced template, if WhatsApp would send it now and the campaign fills it."""
        row = await self.get(name, language)
        if TemplateStatus.of(row.status) is not T.APPROVED:
            raise TemplateNotApproved(name, language, row.status)
        why = refusal(row, parameters)
        if why is not None:
            raise TemplateParameters(name, language, row.parameter_count, why)
        return row

    async def is_marketing(self, name: str, language: str) -> bool:
        """Whether WhatsApp counts the template's messages as marketing (the per-user
        marketing limit applies to those only); a template not synced is taken as one."""
        row = await self.templates.get(name, language)
        category = TemplateCategory.of(None if row is None else row.category)
        return category in (TemplateCategory.MARKETING, TemplateCategory.UNKNOWN)

    async def sync(self, listed: Sequence[dict[str, Any]]) -> Synced:
        """Make the table what the account lists: new templates added, changed ones
        rewritten, ones no longer listed marked DELETED (campaigns still name them)."""
        synced = Synced(listed=len(listed))
        wanted: dict[tuple[str, str], dict[str, Any]] = {}
        for item in listed:
            values = columns_of(item)
            if values is None:
                synced.skipped += 1
            else:
                wanted[(values["name"], values["language"])] = values
        existing = {(row.name, row.language): row for row in await self.templates.all()}
        writes = []
        for key, values in wanted.items():
            old = existing.get(key)
            if old is None:
                synced.added += 1
            elif any(getattr(old, column) != value for column, value in values.items()):
                synced.changed += 1
            else:
                continue
            writes.append(values)
        await self.templates.upsert(writes)
        synced.halted = [
            (key, T(values["status"]))
            for key, values in wanted.items()
            if values["status"] in HALTING
        ]
        gone = [
            row.id for key, row in existing.items() if key not in wanted and row.status != T.DELETED
        ]
        await self.templates.mark_deleted(gone, "no longer listed by the WhatsApp Business Account")
        synced.deleted = len(gone)
        return synced

    async def report(self, value: dict[str, Any]) -> Reported | None:
        """Apply a `message_template_status_update` to the template it names; None when it
        names none Herald has synced, or is no status change."""
        event = _word(value.get("event"))
        name = _text(value.get("message_template_name"), 512)
        # The reference shows locales as "en-US"; templates are listed (and sent) as "en_US".
        language = _text(value.get("message_template_language"), 16)
        language = None if language is None else language.replace("-", "_")
        if name is None or language is None or event == T.UNKNOWN:
            logger.warning("template status item skipped: no event, name or language")
            return None
        if event in NOT_STATUSES:
            logger.info("template %s (%s): %s, status unchanged", name, language, event)
            return None
        status = EVENT_STATUSES.get(event, event)
        values: dict[str, Any] = {"status": status, "reason": _reason(value)}
        if _text(value.get("message_template_category"), 32) is not None:
            values["category"] = _word(value["message_template_category"])
        if not await self.templates.set_status(name, language, values):
            logger.info(
                "template %s (%s) is not synced: run `herald templates sync`", name, language
            )
            return None
        return Reported((name, language), TemplateStatus.of(status))

    async def mark(self, key: tuple[str, str], status: TemplateStatus, reason: str) -> None:
        """Record a status a send's error revealed, unless the template already has it."""
        values = {"status": status.value, "reason": reason}
        await self.templates.set_status(*key, values, if_changed=True)


def _reason(value: dict[str, Any]) -> str | None:
    """WhatsApp's words on a status change: its reason, and a pause's title and description."""
    other = value.get("other_info")
    other = other if isinstance(other, dict) else {}
    parts = [
        _text(value.get("reason"), 200),
        _text(other.get("title"), 200),
        _text(other.get("description"), 500),
    ]
    said = [part for part in parts if part is not None and part != "NONE"]
    return ": ".join(said) or None

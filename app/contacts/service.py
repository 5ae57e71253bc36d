"""Contact rules: E.164 phone normalization, duplicate detection, bulk import, memberships,
and which contacts a WhatsApp availability check covers.

Services raise DomainError subclasses and never commit; the caller wraps each mutation in a
savepoint, so an error raised half-way leaves nothing written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import orjson
import phonenumbers
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.categories.repository import CategoryRepository
from app.changes import changes_of
from app.contacts.repository import ContactFilter, ContactRepository, ImportRow
from app.errors import Duplicate, InvalidInput, InvalidPhone, NotFound
from app.inputs import check_length, json_excess
from app.stats.repository import StatsRepository
from app.turns import LIGHT_TURN

VERIFY_CHUNK = 500
# Rows an import checks between two turns of the event loop: parsing a phone number takes
# 30 to 70 µs, so 10,000 rows at once held every other request for 0.3 s and more; 100 rows
# hold them a few ms.
IMPORT_CHUNK = 100
NAME_MAX = 200  # contacts.name is TEXT: bounded here, as the other names (VARCHAR(200))
# Attributes are a contact's template variables, stored as JSONB and sent with every page
# that shows the contact.
ATTRIBUTES_MAX_BYTES = 16 * 1024  # encoded as JSON
ATTRIBUTES_MAX_DEPTH = 4  # nested objects or arrays
ATTRIBUTES_MAX_ENTRIES = 100  # keys and array items, all levels together


def check_region(region: str | None) -> str | None:
    """An ISO 3166 region phonenumbers knows (e.g. "FR"), upper-cased; None stays None."""
    if region is None:
        return None
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidInput("defaultRegion", f"{region!r} is not a known region code, e.g. 'FR'")
    return code


def normalize_phone(raw: str, region: str | None) -> str:
    """E.164 (+33612345678) from any notation; national ones need `region` (checked)."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise InvalidPhone(raw) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(raw)
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def check_name(name: str | None) -> str | None:
    return None if name is None else check_length("name", name, NAME_MAX)


def check_attributes(value: Any) -> dict[str, Any]:
    """Template variables are a JSON object (or nothing, stored as {}) of bounded shape and
    size that jsonb can store; the shape is checked first, so the rest walks a small object."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("attributes", "attributes must be a JSON object")
    excess = json_excess(value, ATTRIBUTES_MAX_DEPTH, ATTRIBUTES_MAX_ENTRIES)
    if excess == "depth":
        raise InvalidInput(
            "attributes", f"attributes may nest at most {ATTRIBUTES_MAX_DEPTH} levels deep"
        )
    if excess == "entries":
        raise InvalidInput(
            "attributes",
            f"attributes may hold at most {ATTRIBUTES_MAX_ENTRIES} keys and list items",
        )
    problem = _unstorable(value)
    if problem is not None:
        raise InvalidInput("attributes", f"attributes cannot hold {problem}")
    if len(orjson.dumps(value)) > ATTRIBUTES_MAX_BYTES:
        raise InvalidInput(
            "attributes", f"attributes must be at most {ATTRIBUTES_MAX_BYTES} bytes as JSON"
        )
    return value


def _unstorable(value: Any) -> str | None:
    """What of a JSON value jsonb cannot store: a NUL character (PostgreSQL refuses it) or
    an integer beyond 64 bits (the JSON encoder's limit). Walked without recursion: a
    client chooses the nesting."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "a NUL character (U+0000)"
        elif isinstance(item, int) and not -(2**63) <= item < 2**64:
            return "an integer beyond 64 bits"
    return None


def _check_ids(ids: Sequence[int], field: str, limit: int) -> list[int]:
    if len(ids) > limit:
        raise InvalidInput(field, f"at most {limit} ids per call, got {len(ids)}")
    return list(dict.fromkeys(ids))


class ImportRowErrorReason(StrEnum):
    INVALID_PHONE = "invalid_phone"
    INVALID_NAME = "invalid_name"
    INVALID_ATTRIBUTES = "invalid_attributes"
    DUPLICATE_IN_BATCH = "duplicate_in_batch"
    ALREADY_EXISTS = "already_exists"


_INVALID = {
    "name": ImportRowErrorReason.INVALID_NAME,
    "attributes": ImportRowErrorReason.INVALID_ATTRIBUTES,
}


class ImportInput(Protocol):
    """A row to import as submitted: the API's input rows are used as they are."""

    @property
    def phone(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def attributes(self) -> Any: ...


@dataclass(frozen=True)
class ImportRowError:
    index: int  # position in the submitted rows, from 0
    phone: str  # as submitted
    reason: ImportRowErrorReason
    message: str


@dataclass
class ImportResult:
    contacts: list[Row] = field(default_factory=list)  # created or updated, input order
    created: int = 0
    updated: int = 0
    errors: list[ImportRowError] = field(default_factory=list)  # by index


@dataclass(frozen=True)
class MembershipChange:
    category: Row
    changed: int  # memberships added or removed


async def count_contacts(session: AsyncSession, where: ContactFilter) -> int:
    """From the counters when only opt-outs filter (constant time), else count(*)."""
    if not where.search and where.category_id is None and where.whatsapp_status is None:
        return await StatsRepository(session).contact_count(where.opted_out)
    return await ContactRepository(session).count(where)


class ContactService:
    """Each write records what it changed (app/changes)."""

    def __init__(self, session: AsyncSession, max_ids: int) -> None:
        self.contacts = ContactRepository(session)
        self.categories = CategoryRepository(session)
        self.max_ids = max_ids  # Settings.import_max_rows: rows or ids one call may carry
        self.changes = changes_of(session)

    async def create(
        self,
        phone: str,
        name: str | None,
        attributes: Any,
        region: str | None,
        category_ids: Sequence[int] = (),
    ) -> Row:
        normalized = normalize_phone(phone, check_region(region))
        name = check_name(name)
        values = check_attributes(attributes)
        category_ids = _check_ids(category_ids, "categoryIds", self.max_ids)
        row = await self.contacts.insert(normalized, name, values)
        if row is None:
            raise Duplicate("Contact", "phone", normalized)
        await self._join(category_ids, [row.id])
        self.changes.contacts()
        return row

    async def update(
        self, contact_id: int, changes: dict[str, Any], region: str | None = None
    ) -> Row:
        """Apply `changes` (phone, name, attributes: only the keys given)."""
        values = dict(changes)
        if "phone" in values:
            if values["phone"] is None:
                raise InvalidInput("phone", "phone cannot be null")
            values["phone"] = normalize_phone(values["phone"], check_region(region))
        if "name" in values:
            values["name"] = check_name(values["name"])
        if "attributes" in values:
            values["attributes"] = check_attributes(values["attributes"])
        if values:
            row = await self.contacts.update(contact_id, values)
        else:
            row = next(iter(await self.contacts.by_ids([contact_id])), None)
        if row is None:
            raise NotFound("Contact", contact_id)
        self.changes.contacts()
        return row

    async def delete(self, contact_id: int) -> None:
        """Its memberships, messages and their interactions go with it (ON DELETE CASCADE)."""
        if not await self.contacts.delete(contact_id):
            raise NotFound("Contact", contact_id)
        self.changes.contacts(deleted=True)  # its messages leave campaigns' stats
        self.changes.categories(membership=True)

    async def import_rows(
        self,
        rows: Sequence[ImportInput],
        region: str | None,
        category_ids: Sequence[int] = (),
        update_existing: bool = False,
    ) -> ImportResult:
        """Validate every row, then write the valid ones with one set-based statement.

        Bad rows are reported by index and skipped; the valid rows are kept. The first
        occurrence of a phone wins over later ones in the same batch.
        """
        if len(rows) > self.max_ids:
            raise InvalidInput("rows", f"at most {self.max_ids} rows per import, got {len(rows)}")
        region = check_region(region)
        category_ids = _check_ids(category_ids, "categoryIds", self.max_ids)
        result = ImportResult()
        valid: dict[str, tuple[int, ImportRow]] = {}  # E.164 → (index, row)
        for index, row in enumerate(rows):
            if index and index % IMPORT_CHUNK == 0:
                await asyncio.sleep(0)  # other requests' turn; the transaction stays open
            try:
                checked = ImportRow(
                    normalize_phone(row.phone, region),
                    check_name(row.name),
                    check_attributes(row.attributes),
                )
            except (InvalidPhone, InvalidInput) as exc:
                reason = (
                    ImportRowErrorReason.INVALID_PHONE
                    if isinstance(exc, InvalidPhone)
                    else _INVALID[exc.field]
                )
                result.errors.append(ImportRowError(index, row.phone, reason, exc.message))
                continue
            if checked.phone in valid:
                first = valid[checked.phone][0]
                result.errors.append(
                    ImportRowError(
                        index,
                        row.phone,
                        ImportRowErrorReason.DUPLICATE_IN_BATCH,
                        f"{checked.phone} already appears in row {first}",
                    )
                )
                continue
            valid[checked.phone] = (index, checked)

        written = (
            await self.contacts.import_rows([r for _, r in valid.values()], update_existing)
            if valid
            else []
        )
        by_phone = {r.phone: r for r in written}
        for turn, (phone, (index, _)) in enumerate(valid.items()):
            if turn and turn % LIGHT_TURN == 0:
                await asyncio.sleep(0)
            found = by_phone.get(phone)
            if found is None:
                result.errors.append(
                    ImportRowError(
                        index,
                        rows[index].phone,
                        ImportRowErrorReason.ALREADY_EXISTS,
                        f"a contact with phone {phone} already exists",
                    )
                )
                continue
            result.contacts.append(found)
            if found.inserted:
                result.created += 1
            else:
                result.updated += 1
        result.errors.sort(key=lambda e: e.index)
        await self._join(category_ids, [r.id for r in result.contacts])
        if result.contacts:
            self.changes.contacts()
        return result

    async def add_to_category(
        self, category_id: int, contact_ids: Sequence[int]
    ) -> MembershipChange:
        contact_ids = _check_ids(contact_ids, "contactIds", self.max_ids)
        category = await self._category(category_id)
        await self._require_contacts(contact_ids)
        membership = await self.categories.add_members([category_id], contact_ids)
        if membership.added:
            self.changes.categories(membership=True)
        return MembershipChange(category, membership.added)

    async def remove_from_category(
        self, category_id: int, contact_ids: Sequence[int]
    ) -> MembershipChange:
        contact_ids = _check_ids(contact_ids, "contactIds", self.max_ids)
        category = await self._category(category_id)
        await self._require_contacts(contact_ids)
        removed = await self.categories.remove_members(category_id, contact_ids)
        if removed:
            self.changes.categories(membership=True)
        return MembershipChange(category, removed)

    async def _join(self, category_ids: Sequence[int], contact_ids: Sequence[int]) -> None:
        """Put contacts just written into categories; an unknown category undoes it all."""
        if not category_ids:
            return
        membership = await self.categories.add_members(category_ids, contact_ids)
        for category_id in category_ids:
            if category_id not in membership.found:
                raise NotFound("Category", category_id)
        if contact_ids:
            self.changes.categories(membership=True)

    async def _category(self, category_id: int) -> Row:
        row = await self.categories.get_shared(category_id)
        if row is None:
            raise NotFound("Category", category_id)
        return row

    async def _require_contacts(self, contact_ids: Sequence[int]) -> None:
        found = await self.contacts.existing_ids(contact_ids) if contact_ids else set()
        for contact_id in contact_ids:
            if contact_id not in found:
                raise NotFound("Contact", contact_id)


class ContactVerificationService:
    def __init__(self, session: AsyncSession) -> None:
        self.contacts = ContactRepository(session)

    async def to_verify(self, ids: Sequence[int] | None, limit: int) -> list[int]:
        """The contacts to check: the given ones (all must exist), else every unchecked one."""
        if ids is None:
            return await self.contacts.unchecked_ids()
        if len(ids) > limit:
            raise InvalidInput("contactIds", f"at most {limit} contacts per request")
        found = await self.contacts.phones(ids)
        for contact_id in ids:
            if contact_id not in found:
                raise NotFound("Contact", contact_id)
        return sorted(set(ids))


def chunks(ids: Sequence[int], size: int = VERIFY_CHUNK) -> list[list[int]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]

"""The WhatsApp Business Account's message templates as the Cloud API lists them
(`GET /{waba-id}/message_templates`, cursor-paged), or the simulated account's for demos."""

from __future__ import annotations

from typing import Any

import httpx

from app.config import Provider, Settings

FIELDS = "id,name,language,status,category,components,rejected_reason"
PAGE_SIZE = 100
# An account holds at most a few thousand templates: more pages than this is a cursor loop.
MAX_PAGES = 1_000


class ListingError(Exception):
    """The listing could not be read whole (nothing may be concluded from part of it)."""


def _demo(number: int, name: str, language: str, category: str, body: str) -> dict[str, Any]:
    components = [{"type": "BODY", "text": body}]
    if category == "MARKETING":
        components.append({"type": "FOOTER", "text": "Reply STOP to opt out"})
    return {
        "id": f"sim-{number}",
        "name": name,
        "language": language,
        "status": "APPROVED",
        "category": category,
        "components": components,
    }


# The simulated account's templates: the demo campaigns' (app/seed), all approved.
SIMULATED_TEMPLATES: tuple[dict[str, Any], ...] = (
    _demo(
        1,
        "spring_sale",
        "en",
        "MARKETING",
        "Hi {{1}}, our spring sale starts today: {{2}}% off everything.",
    ),
    _demo(
        2,
        "order_follow_up",
        "en",
        "UTILITY",
        "Hello {{1}}, how are you enjoying your order from {{2}}?",
    ),
    _demo(
        3,
        "nouvelle_collection",
        "fr",
        "MARKETING",
        "Bonjour {{1}}, la nouvelle collection est arrivée !",
    ),
    _demo(
        4, "store_event", "en", "MARKETING", "Hi {{1}}, join us at our {{2}} store this Saturday."
    ),
    _demo(
        5,
        "loyalty_reward",
        "en",
        "MARKETING",
        "{{1}}, you have {{2}} loyalty points waiting for you.",
    ),
    _demo(
        6,
        "winterschlussverkauf",
        "de",
        "MARKETING",
        "Hallo {{1}}, bis zu {{2}}% Rabatt im Winterschlussverkauf.",
    ),
)


async def list_templates(settings: Settings) -> list[dict[str, Any]]:
    """Every template of the account, as the Cloud API describes one; ListingError if the
    listing cannot be read to its end."""
    if settings.whatsapp_provider is Provider.SIMULATED:
        return [dict(template) for template in SIMULATED_TEMPLATES]
    account = settings.whatsapp_business_account_id
    if not account:
        raise ListingError(
            "HERALD_WHATSAPP_BUSINESS_ACCOUNT_ID is not set: the templates are listed from "
            "the WhatsApp Business Account"
        )
    url = f"{settings.whatsapp_api_base_url.rstrip('/')}/{account}/message_templates"
    headers = {}
    if settings.whatsapp_access_token:
        headers["Authorization"] = f"Bearer {settings.whatsapp_access_token}"
    params: dict[str, str | int] = {"fields": FIELDS, "limit": PAGE_SIZE}
    found: list[dict[str, Any]] = []
    cursors: set[str] = set()
    async with httpx.AsyncClient(timeout=settings.whatsapp_http_timeout_s) as client:
        for _ in range(MAX_PAGES):
            page = await _page(client, url, params, headers)
            found += [item for item in page.get("data") or [] if isinstance(item, dict)]
            paging = _object(page.get("paging"))
            after = _object(paging.get("cursors")).get("after")
            # `next` says whether there is more; the request for it is built here from
            # the cursor, so the token only ever goes to the configured base URL.
            if not paging.get("next"):
                return found
            if not isinstance(after, str) or after in cursors:
                raise ListingError("the listing's paging has no new `after` cursor")
            cursors.add(after)
            params["after"] = after
    raise ListingError(f"the listing has more than {MAX_PAGES} pages")


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


async def _page(
    client: httpx.AsyncClient, url: str, params: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    try:
        response = await client.get(url, params=params, headers=headers)
    except httpx.HTTPError as exc:
        raise ListingError(f"the Cloud API did not answer: {exc!r}") from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 300 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        detail = error.get("message") if isinstance(error, dict) else None
        raise ListingError(
            f"the Cloud API answered HTTP {response.status_code}"
            + (f": {detail}" if detail else "")
        )
    return body

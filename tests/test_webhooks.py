"""The WhatsApp webhook over HTTP: handshake, signatures, forward-only statuses, replies."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.whatsapp.providers import sign
from tests.conftest import GqlClient, Server
from tests.fake_whatsapp import phone, seed_campaign

pytestmark = pytest.mark.asyncio

SECRET = "app-secret"
URL = "/webhooks/whatsapp"


@pytest.fixture(autouse=True)
def secrets(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "whatsapp_app_secret", SECRET)
    monkeypatch.setattr(settings, "whatsapp_verify_token", "verify-me")


def envelope(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }


def status(wamid: str, name: str, message_id: int | None = None, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"id": wamid, "status": name, "timestamp": "1764000000", **extra}
    if message_id is not None:
        event["biz_opaque_callback_data"] = str(message_id)
    return envelope({"messaging_product": "whatsapp", "statuses": [event]})


def reply(sender: str, body: str, context: str | None, event_id: str = "wamid.in.1") -> dict:
    message: dict[str, Any] = {
        "from": sender.lstrip("+"),
        "id": event_id,
        "timestamp": "1764000000",
        "type": "text",
        "text": {"body": body},
    }
    if context:
        message["context"] = {"id": context}
    return envelope({"messaging_product": "whatsapp", "messages": [message]})


async def post(http: httpx.AsyncClient, payload: dict[str, Any], secret: str = SECRET) -> int:
    body = orjson.dumps(payload)
    response = await http.post(
        URL,
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(secret, body)},
    )
    return response.status_code


async def given_messages(session: AsyncSession, *statuses: str) -> int:
    """One message per status for contacts 0..n-1, provider ids wamid.0.. (none if sending)."""
    campaign_id = await seed_campaign(session, len(statuses))
    for i, value in enumerate(statuses):
        await session.execute(
            text(
                "INSERT INTO messages (campaign_id, contact_id, status, provider_message_id) "
                "VALUES (:c, :k, :s, :p)"
            ),
            {
                "c": campaign_id,
                "k": i + 1,
                "s": value,
                "p": None if value == "sending" else f"wamid.{i}",
            },
        )
    await session.commit()
    return campaign_id


async def message(session: AsyncSession, contact_id: int) -> Any:
    row = (
        await session.execute(
            text(
                "SELECT status, provider_message_id, error, sent_at, delivered_at, read_at "
                "FROM messages WHERE contact_id = :k"
            ),
            {"k": contact_id},
        )
    ).one()
    await session.commit()
    return row


async def test_subscription_handshake(http: httpx.AsyncClient) -> None:
    ok = await http.get(
        URL,
        params={"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "42"},
    )
    refused = await http.get(
        URL, params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "42"}
    )
    assert (ok.status_code, ok.text) == (200, "42")
    assert refused.status_code == 403


async def test_bad_signature_is_rejected_and_changes_nothing(
    http: httpx.AsyncClient, session: AsyncSession
) -> None:
    # given
    await given_messages(session, "sent")

    # when
    code = await post(http, status("wamid.0", "read"), secret="forged")
    unsigned = await http.post(URL, content=orjson.dumps(reply(phone(0), "STOP", "wamid.0")))

    # then
    assert (code, unsigned.status_code) == (401, 401)
    assert (await message(session, 1)).status == "sent"
    counts = await session.execute(
        text(
            "SELECT (SELECT count(*) FROM interactions), "
            "(SELECT count(*) FROM contacts WHERE opted_out_at IS NOT NULL)"
        )
    )
    assert counts.one() == (0, 0)


async def test_out_of_order_and_duplicate_statuses_only_move_forward(
    http: httpx.AsyncClient, session: AsyncSession
) -> None:
    # given a message whose worker has not recorded the provider id yet
    await given_messages(session, "sending")
    message_id = (await session.execute(text("SELECT id FROM messages"))).scalar_one()

    # when read arrives first (matched by our id echoed back), then the older statuses
    codes = [
        await post(http, status("wamid.x", "read", message_id)),
        await post(http, status("wamid.x", "delivered", message_id)),
        await post(http, status("wamid.x", "sent", message_id)),
        await post(http, status("wamid.x", "failed", message_id, errors=[{"code": 131047}])),
        await post(http, status("wamid.x", "read", message_id)),
    ]

    # then
    assert codes == [200] * 5
    row = await message(session, 1)
    assert row.status == "read"
    assert row.provider_message_id == "wamid.x"
    assert row.error is None
    assert None not in (row.sent_at, row.delivered_at, row.read_at)


async def test_delivered_wins_over_an_earlier_failed(
    http: httpx.AsyncClient, session: AsyncSession
) -> None:
    # given
    await given_messages(session, "sent")

    # when
    await post(http, status("wamid.0", "failed", errors=[{"code": 131000, "title": "Boom"}]))
    failed = await message(session, 1)
    await post(http, status("wamid.0", "delivered"))

    # then
    assert (failed.status, failed.error) == ("failed", "131000: Boom")
    assert (await message(session, 1)).status == "delivered"


async def test_undeliverable_status_marks_contact_invalid(
    http: httpx.AsyncClient, session: AsyncSession
) -> None:
    # given
    await given_messages(session, "sent")

    # when
    await post(
        http, status("wamid.0", "failed", errors=[{"code": 131026, "title": "Undeliverable"}])
    )

    # then
    row = await message(session, 1)
    assert (row.status, row.error) == ("failed", "131026: Undeliverable")
    contact = await session.execute(text("SELECT whatsapp_status FROM contacts WHERE id = 1"))
    assert contact.scalar_one() == "invalid"


async def test_stop_reply_opts_out_once(http: httpx.AsyncClient, session: AsyncSession) -> None:
    # given
    await given_messages(session, "delivered", "delivered")

    # when the STOP reply is delivered twice (webhooks are redelivered), plus a normal reply
    codes = [
        await post(http, reply(phone(0), " Stop! ", "wamid.0")),
        await post(http, reply(phone(0), " Stop! ", "wamid.0")),
        await post(http, reply(phone(1), "Merci", None, event_id="wamid.in.2")),
        await post(http, reply("+33699999999", "STOP", None, event_id="wamid.in.3")),
    ]

    # then
    assert codes == [200] * 4
    opted = await session.execute(
        text("SELECT id FROM contacts WHERE opted_out_at IS NOT NULL ORDER BY id")
    )
    assert opted.scalars().all() == [1]
    interactions = await session.execute(
        text(
            "SELECT m.contact_id, i.kind, i.payload->>'text' FROM interactions i "
            "JOIN messages m ON m.id = i.message_id ORDER BY i.id"
        )
    )
    assert [tuple(r) for r in interactions] == [(1, "opt_out", " Stop! "), (2, "reply", "Merci")]


CAMPAIGN_STATS = "query ($id: ID!) { campaign(id: $id) { stats { sent delivered } } }"


async def test_status_webhook_refreshes_cached_campaign_stats(
    http: httpx.AsyncClient, session: AsyncSession, gql: GqlClient
) -> None:
    # given a completed campaign whose stats are cached
    campaign_id = await given_messages(session, "sent")
    await session.execute(
        text("UPDATE campaigns SET status = 'completed' WHERE id = :c"), {"c": campaign_id}
    )
    await session.commit()
    variables = {"id": str(campaign_id)}
    assert (await gql.ok(CAMPAIGN_STATS, variables))["campaign"]["stats"] == {
        "sent": 1,
        "delivered": 0,
    }
    cached = await gql(CAMPAIGN_STATS, variables)
    assert cached.sql == 1  # the campaign row; its stats came from Redis

    # when the late delivery receipt arrives
    assert await post(http, status("wamid.0", "delivered")) == 200

    # then the next read is fresh
    assert (await gql.ok(CAMPAIGN_STATS, variables))["campaign"]["stats"] == {
        "sent": 0,
        "delivered": 1,
    }


async def test_accepted_webhooks_log_no_info_access_line(
    http: httpx.AsyncClient, session: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    # given
    await given_messages(session, "sent")
    caplog.set_level(logging.DEBUG, logger="herald.access")
    # when: three accepted status posts and one forged
    codes = [await post(http, status("wamid.0", name)) for name in ("delivered", "read", "read")]
    forged = await post(http, status("wamid.0", "read"), secret="forged")
    # then: the accepted ones are at DEBUG only, the rejected one at INFO
    assert (codes, forged) == ([200, 200, 200], 401)
    lines = [
        (r.levelno, r.getMessage().rsplit(" ", 1)[0])
        for r in caplog.records
        if r.name == "herald.access"
    ]
    assert lines == [(logging.DEBUG, "POST /webhooks/whatsapp 200")] * 3 + [
        (logging.INFO, "POST /webhooks/whatsapp 401")
    ]


MALFORMED_DELIVERIES: list[Any] = [
    [1, 2],
    {"entry": "x"},
    {"entry": [1, {"changes": "x"}, {"changes": [1, {"field": "messages", "value": 3}]}]},
    envelope({"statuses": "x", "messages": {"a": 1}}),
    envelope({"statuses": [1, "x", None, []]}),
    envelope({"statuses": [{"id": "wamid.0", "status": "failed", "errors": "boom"}]}),
    envelope({"statuses": [{"id": "wamid.0", "status": "read", "timestamp": 1e20}]}),
    envelope({"statuses": [{"id": "wamid.\u0000", "status": "read"}]}),
    envelope({"statuses": [{"id": ["wamid.0"], "status": {"read": 1}}]}),
    envelope({"messages": [{"from": "33610000000", "id": "in.\u0000", "type": "text"}]}),
    envelope({"messages": [{"from": "336\u0000", "id": "in.2", "text": {"body": "hi"}}]}),
    envelope({"messages": [{"from": "33610000000", "id": "in.3", "text": "not an object"}]}),
    envelope({"messages": [{"from": "33610000000", "id": "in.4", "context": "x"}]}),
]


@pytest.mark.parametrize("payload", MALFORMED_DELIVERIES)
async def test_a_malformed_signed_delivery_is_acknowledged_not_a_server_error(
    http: httpx.AsyncClient, session: AsyncSession, payload: Any
) -> None:
    # given
    await given_messages(session, "sent")

    # when
    code = await post(http, payload)

    # then: acknowledged (the provider would deliver a 5xx again and again)
    assert code == 200
    row = await message(session, 1)
    assert row.status in ("sent", "read", "failed")


async def test_a_delivery_applies_its_valid_items_and_skips_the_rest(
    http: httpx.AsyncClient, session: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    # given: a sent message, and one whose provider id is not recorded yet
    await given_messages(session, "sent", "sending")
    second_id = (
        await session.execute(text("SELECT id FROM messages WHERE contact_id = 2"))
    ).scalar_one()
    events: list[Any] = [
        "not an object",
        {"id": "wamid.0", "status": "read", "timestamp": "1764000000"},
        # passes every check, then fails in PostgreSQL (a provider id over 128 characters)
        {"id": "w" * 200, "status": "read", "biz_opaque_callback_data": str(second_id)},
        {
            "id": "wamid.1",
            "status": "delivered",
            "biz_opaque_callback_data": str(second_id),
            "errors": "not a list",
            "timestamp": 1e20,
        },
    ]

    # when
    with caplog.at_level(logging.WARNING, logger="app.http.webhooks"):
        code = await post(http, envelope({"messaging_product": "whatsapp", "statuses": events}))

    # then: the item that failed was undone alone, the others applied
    assert code == 200
    assert [r.getMessage() for r in caplog.records if r.name == "app.http.webhooks"] == [
        "webhook statuses item skipped: DBAPIError"
    ]
    assert (await message(session, 1)).status == "read"
    second = await message(session, 2)
    assert second.status == "delivered"
    assert second.delivered_at is not None


async def test_a_delivery_needs_no_key_whatever_its_size(
    server: Server, settings: Settings, session: AsyncSession
) -> None:
    # given: a signed delivery larger than a GraphQL request without a key may be
    await given_messages(session, "sent")
    payload = status("wamid.0", "delivered", pad="x" * settings.request_max_bytes_anonymous)
    body = orjson.dumps(payload)
    # when: sent with its signature alone
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anonymous:
        response = await anonymous.post(
            URL,
            content=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(SECRET, body)},
        )
    # then
    assert response.status_code == 200
    assert (await message(session, 1)).status == "delivered"

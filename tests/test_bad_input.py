"""Bad input gets a client error and nothing else, on both paths (one server per path).

A field refusing its input while its siblings are still running makes graphql-core cancel
those siblings: the loads they shared with other fields, the session statement or read they
had in flight must not turn into a crash (HTTP 500, INTERNAL_SERVER_ERROR) for the rest of
the request. A NUL character, which PostgreSQL's text cannot hold, is refused as the
client's input before it reaches the database, and a value the database refuses all the
same is reported without the database's own words.
"""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from typing import Any

import asyncpg
import httpx
import pytest
from graphql import GraphQLError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from app.config import Settings
from app.db.engine import create_sessionmaker
from app.db.reads import ReadPool, rows
from app.models import CampaignStatus, MessageStatus
from schema.masking import report_errors
from tests import factories
from tests.conftest import Server

pytestmark = pytest.mark.asyncio

# Campaign pages, each message's campaign loaded by many fields at once, and one contact's
# page with a malformed cursor, which fails while the other fields still wait on loads.
NESTED_PAGES = """
query ($campaign: ID!) { messages(campaignId: $campaign) { nodes { campaign {
  messages(first: 5) { nodes { campaign { messages(first: 2, status: READ) { totalCount } } } }
} } edges { node { contact { messages(first: 2, after: "garbage") { totalCount } }
  campaign { completedAt } } } } }
"""
# Root counts run their statements on the request's session, one at a time: the failing
# page's sibling count is cancelled in flight, the other counts queue behind it.
COUNTS = """
query ($campaign: ID!) {
  failing: messages(campaignId: $campaign) { totalCount edges { node { contact {
    messages(first: 2, after: "garbage") { totalCount } } } } }
  campaign: messages(campaignId: $campaign) { totalCount }
  all: messages { totalCount }
  read: messages(status: READ) { totalCount }
  sent: messages(campaignId: $campaign, status: SENT) { totalCount }
}
"""
SEARCH = "query ($search: String) { contacts(search: $search) { totalCount nodes { id } } }"
SEARCH_LITERAL = '{ contacts(search: "a\\u0000b") { totalCount nodes { id } } }'
# One character over the bound `search` declares (`@maxLength(value: 100)`).
SEARCH_TOO_LONG_LITERAL = '{ contacts(search: "%s") { totalCount nodes { id } } }' % ("x" * 101)
CREATE_CONTACT = """
mutation ($input: CreateContactInput!) { createContact(input: $input) {
  __typename ... on Error { message } ... on InvalidInputError { field } } }
"""
# A JSON literal's integer keeps every digit (a variable's would arrive as a float).
CREATE_CONTACT_BIG_ATTRIBUTE = """
mutation { createContact(input: {phone: "+33612345678", attributes: {visits: 99999999999999999999}})
  { __typename ... on Error { message } ... on InvalidInputError { field } } }
"""
CREATE_CATEGORY_LITERAL = """
mutation { createCategory(input: {name: "VIP\\u0000"}) { __typename } }
"""

MALFORMED_CURSOR = {
    "message": "malformed cursor 'garbage'",
    "extensions": {"code": "BAD_USER_INPUT", "argument": "after"},
}


async def _seed(session: AsyncSession) -> int:
    """Three completed campaigns, each with messages to the same eight contacts."""
    contacts = await factories.contacts(session, 8)
    campaigns = [
        await factories.campaign(session, f"campaign {n}", status=CampaignStatus.COMPLETED)
        for n in range(3)
    ]
    for campaign in campaigns:
        await factories.messages(session, campaign, contacts, MessageStatus.DELIVERED)
    await session.commit()
    return campaigns[0]


async def _post(
    http: httpx.AsyncClient, server: Server, document: str, variables: dict[str, Any]
) -> tuple[int, Any, Any]:
    """(HTTP status, data, errors)."""
    status, body = await _answer(http, server, document, variables)
    return status, body.get("data"), body.get("errors")


async def _answer(
    http: httpx.AsyncClient, server: Server, document: str, variables: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, the body without its extensions)."""
    response = await http.post(
        server.url + "/graphql", json={"query": document, "variables": variables}
    )
    assert response.status_code != 500, response.text
    body = response.json()
    body.pop("extensions", None)
    return response.status_code, body


def _without_location(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in error.items() if k not in ("locations", "path")} for error in errors]


# -- A failing field's siblings ---------------------------------------------------------------


async def test_a_failing_field_does_not_cancel_the_loads_its_siblings_share(
    servers: tuple[Server, Server], session: AsyncSession, admin_key: str
) -> None:
    # given
    campaign = await _seed(session)
    headers = {"Authorization": f"Bearer {admin_key}"}
    answers = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with httpx.AsyncClient(headers=headers, timeout=30) as http:
            for server in servers:
                for _ in range(6):
                    # when
                    answers.append(
                        await _post(http, server, NESTED_PAGES, {"campaign": str(campaign)})
                    )
        gc.collect()
    # then: the cursor's error each time, and no coroutine was left behind
    for status, data, errors in answers:
        assert (status, data, len(errors)) == (200, None, 1)
        error = errors[0]
        assert error["path"] == ["messages", "edges", 0, "node", "contact", "messages"]
        assert _without_location([error]) == [MALFORMED_CURSOR]
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []


async def test_a_statement_cancelled_in_flight_leaves_the_session_usable(
    servers: tuple[Server, Server], session: AsyncSession, admin_key: str
) -> None:
    # given
    campaign = await _seed(session)
    headers = {"Authorization": f"Bearer {admin_key}"}
    answers = []
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        for server in servers:
            for _ in range(10):
                # when: four at a time, so that their statements interleave differently
                answers += await asyncio.gather(
                    *(_post(http, server, COUNTS, {"campaign": str(campaign)}) for _ in range(4))
                )
    # then: only the cursor's error, never the cancelled statement's aftermath
    assert len(answers) == 80
    path = ["failing", "edges", 0, "node", "contact", "messages"]
    for status, data, errors in answers:
        assert (status, data, len(errors)) == (200, None, 1)
        assert errors[0]["path"] == path
        assert _without_location(errors) == [MALFORMED_CURSOR]


# -- A statement cancelled on the read pool -----------------------------------------------------

SLEEP = text("SELECT pg_sleep(30) AS slept")
BACKEND = text("SELECT pg_backend_pid() AS pid")
ACTIVITY = "SELECT state, query FROM pg_stat_activity WHERE pid = $1"


async def _activity(admin: asyncpg.Connection, pid: int) -> tuple[str, str]:
    row = await admin.fetchrow(ACTIVITY, pid)
    assert row is not None
    return row["state"], row["query"]


async def _until(check: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_cancelled_read_stops_on_the_server_and_its_connection_comes_back(
    settings: Settings,
) -> None:
    # given: a read pool of one connection, running a long statement
    engine = create_async_engine(settings.async_database_url, poolclass=NullPool)
    reads = ReadPool(engine, 1)
    request = create_sessionmaker(engine, reads)()
    request.read_only()
    admin = await asyncpg.connect(settings.async_database_url.replace("+asyncpg", ""))
    try:
        pid = (await rows(request, BACKEND)).records[0][0]
        sleeping = asyncio.create_task(rows(request, SLEEP))

        async def running() -> bool:
            state, query = await _activity(admin, pid)
            return state == "active" and "pg_sleep" in query

        await _until(running)
        # when
        sleeping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeping

        # then: PostgreSQL stops the statement, and the same connection serves the next one
        async def stopped() -> bool:
            return (await _activity(admin, pid))[0] == "idle"

        await _until(stopped)
        assert (await rows(request, BACKEND)).records[0][0] == pid
        assert (reads.open, reads.idle) == (1, 1)
    finally:
        await admin.close()
        await reads.close()
        await engine.dispose()


# -- NUL characters and values the database refuses ------------------------------------------


@pytest.mark.parametrize(
    ("value", "literal", "message"),
    [
        pytest.param(
            "a\u0000b",
            SEARCH_LITERAL,
            "search cannot contain a NUL character (U+0000)",
            id="a NUL character",
        ),
        pytest.param(
            "x" * 101,
            SEARCH_TOO_LONG_LITERAL,
            "search must be at most 100 characters, got 101",
            id="over its declared maximum",
        ),
    ],
)
async def test_a_search_the_database_should_not_see_is_refused_naming_the_argument(
    servers: tuple[Server, Server],
    session: AsyncSession,
    admin_key: str,
    value: str,
    literal: str,
    message: str,
) -> None:
    # given
    await factories.contacts(session, 3)
    await session.commit()
    answers = []
    for accept in ("application/json", "application/graphql-response+json"):
        headers = {"Authorization": f"Bearer {admin_key}", "Accept": accept}
        async with httpx.AsyncClient(headers=headers, timeout=30) as http:
            for server in servers:
                # when: as a variable and as a literal
                answers.append(await _answer(http, server, SEARCH, {"search": value}))
                answers.append(await _answer(http, server, literal, {}))
    # then: a request error, before any field ran: no `data`, and 400 in the media type that
    # tells request errors by their status
    refused = {
        "message": message,
        "extensions": {"code": "BAD_USER_INPUT", "argument": "search"},
    }
    assert answers == [(200, {"errors": [refused]})] * 4 + [(400, {"errors": [refused]})] * 4


async def test_a_nul_character_in_a_mutation_is_a_clear_error_and_writes_nothing(
    servers: tuple[Server, Server], session: AsyncSession, admin_key: str
) -> None:
    # given
    headers = {"Authorization": f"Bearer {admin_key}"}
    name = {"input": {"phone": "+33612345678", "name": "Ada\u0000"}}
    attributes = {"input": {"phone": "+33612345678", "attributes": {"first_name": "A\u0000"}}}
    answers = []
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        for server in servers:
            # when
            answers.append(await _post(http, server, CREATE_CONTACT, name))
            answers.append(await _post(http, server, CREATE_CATEGORY_LITERAL, {}))
            answers.append(await _post(http, server, CREATE_CONTACT, attributes))
            answers.append(await _post(http, server, CREATE_CONTACT_BIG_ATTRIBUTE, {}))
    # then: the argument or the field is named; nothing of PostgreSQL's shows
    refused = (
        200,
        None,
        [
            {
                "message": "input.name cannot contain a NUL character (U+0000)",
                "extensions": {"code": "BAD_USER_INPUT", "argument": "input.name"},
            }
        ],
    )
    invalid = [
        (
            200,
            {
                "createContact": {
                    "__typename": "InvalidInputError",
                    "message": f"attributes cannot hold {what}",
                    "field": "attributes",
                }
            },
            None,
        )
        for what in ("a NUL character (U+0000)", "an integer beyond 64 bits")
    ]
    assert answers == [refused, refused, *invalid] * 2
    written = await session.execute(
        text("SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM categories)")
    )
    assert tuple(written.one()) == (0, 0)


ECHO = text("SELECT CAST(:value AS text) AS echoed")


async def test_a_value_the_database_refuses_is_the_same_client_error_from_either_pool(
    settings: Settings,
) -> None:
    # given: a value PostgreSQL refuses, sent through the read pool (asyncpg's error) and
    # through SQLAlchemy (its DBAPIError)
    engine = create_async_engine(settings.async_database_url, poolclass=NullPool)
    reads = ReadPool(engine, 1)
    sessions = create_sessionmaker(engine, reads)
    read_only, writing = sessions(), sessions()
    read_only.read_only()
    raised: list[Exception] = []
    try:
        for session in (read_only, writing):
            with pytest.raises((asyncpg.PostgresError, DBAPIError)) as refused:
                await rows(session, ECHO, {"value": "a\u0000b"})
            assert isinstance(refused.value, Exception)
            raised.append(refused.value)
    finally:
        await writing.close()
        await reads.close()
        await engine.dispose()
    assert [type(e) for e in raised] == [asyncpg.CharacterNotInRepertoireError, DBAPIError]
    errors = [GraphQLError("refused", path=["contacts"], original_error=e) for e in raised]
    # when
    report_errors(errors, None)
    # then
    expected = {
        "message": "a text value holds a character that cannot be stored (such as NUL); "
        "nothing was written",
        "path": ["contacts"],
        "extensions": {"code": "BAD_USER_INPUT"},
    }
    assert [error.formatted for error in errors] == [expected, expected]

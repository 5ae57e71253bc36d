"""Phone numbers never reach a log in full, whatever logs them and however it is formatted."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import pytest
from sqlalchemy.exc import IntegrityError

from app.config import Settings
from app.observability.filters import install_phone_masking, mask_phones
from app.observability.requests import JsonFormatter

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+33612345678", "+33*******78"),
        ("to +33 6 12 34 56 78.", "to +33*******78."),
        ("+1-415-555-0132 and +447911123456", "+14*******32 and +44********56"),
        (
            "GET /graphql?query=%7Bcontacts(search:%22%2B33612345678%22)",
            "GET /graphql?query=%7Bcontacts(search:%22%2B33*******78%22)",
        ),
    ],
)
async def test_numbers_keep_country_code_and_last_two_digits(raw: str, masked: str) -> None:
    assert mask_phones(raw) == masked


@pytest.mark.parametrize(
    "text",
    ["campaign 1234567890", "took 12345678 ms", "+1234", "version 0.1.0", "id:+abc12345678"],
)
async def test_other_numbers_are_left_alone(text: str) -> None:
    assert mask_phones(text) == text


async def test_message_arguments_and_exceptions_are_masked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given: the factory the app installs at start
    install_phone_masking()
    logger = logging.getLogger("herald.test")
    duplicate = IntegrityError(
        "INSERT INTO contacts", {}, Exception("Key (phone)=(+33612345678) already exists.")
    )
    # when
    with caplog.at_level(logging.INFO):
        logger.info("sending to %s", "+33612345678")
        logger.info("batch %s", {"phones": ["+447911123456"]})
        try:
            raise RuntimeError("import failed") from duplicate
        except RuntimeError:
            logger.exception("contact +33 6 12 34 56 78 failed")
    # then: in every rendering, text or JSON, with the exception's chain
    text = caplog.text
    json_lines = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    for output in (text, json_lines):
        assert "612345678" not in output
        assert "7911123456" not in output
        assert "+33*******78" in output
        assert "+44********56" in output
    assert "IntegrityError" in text  # the exception kept its type name and chain
    assert caplog.records[0].getMessage() == "sending to +33*******78"


async def test_worker_processes_mask_phone_numbers_too(settings: Settings) -> None:
    """Loading the worker module (what `herald worker` does) installs the masking."""
    code = (
        "import logging, app.worker.process;"
        "r = logging.getLogger('x').makeRecord('x', 20, 'f', 1, 'to +33612345678', None, None);"
        "print(r.getMessage())"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "HERALD_REDIS_URL": str(settings.redis_url)},
    )
    output = (await process.communicate())[0].decode()
    assert process.returncode == 0
    assert "+33612345678" not in output
    assert output.strip().startswith("to +33")

"""The Cloud API error table: one class per code, what each class implies, the defaults."""

from __future__ import annotations

import logging

import pytest

from app.models import PauseCode
from app.whatsapp import errors
from app.whatsapp.errors import ERRORS, ErrorClass, classify

FINAL, LATER, SLOW, STOP = (
    ErrorClass.MESSAGE_FINAL,
    ErrorClass.RETRY_LATER,
    ErrorClass.SLOW_DOWN,
    ErrorClass.CAMPAIGN_STOPPING,
)


@pytest.mark.parametrize(
    ("code", "http_status", "kind", "pause"),
    [
        (131026, 400, FINAL, None),
        (131047, 400, FINAL, None),
        (131051, 400, FINAL, None),
        (131049, 400, FINAL, None),
        (131056, 400, LATER, None),
        (130472, 400, LATER, None),
        (131000, 500, LATER, None),
        (131016, 503, LATER, None),
        (None, 503, LATER, None),
        (None, 0, LATER, None),
        (130429, 429, SLOW, None),
        (80007, 400, SLOW, None),
        (131057, 500, SLOW, None),
        (None, 429, SLOW, None),
        (132015, 400, STOP, PauseCode.TEMPLATE_PAUSED),
        (132016, 400, STOP, PauseCode.TEMPLATE_DISABLED),
        (132000, 400, STOP, PauseCode.TEMPLATE_MISMATCH),
        (132001, 404, STOP, PauseCode.TEMPLATE_MISMATCH),
        (132005, 400, STOP, PauseCode.TEMPLATE_MISMATCH),
        (132007, 400, STOP, PauseCode.TEMPLATE_MISMATCH),
        (132012, 400, STOP, PauseCode.TEMPLATE_MISMATCH),
        (131048, 400, STOP, PauseCode.SPAM_RATE_LIMIT),
        (131031, 403, STOP, PauseCode.ACCOUNT_RESTRICTED),
        (368, 403, STOP, PauseCode.ACCOUNT_RESTRICTED),
        (131042, 400, STOP, PauseCode.PAYMENT_REQUIRED),
        (190, 401, STOP, PauseCode.ACCESS_TOKEN_INVALID),
        (None, 400, FINAL, None),
    ],
)
def test_each_error_has_its_class(
    code: int | None, http_status: int, kind: ErrorClass, pause: PauseCode | None
) -> None:
    rule = classify(code, http_status)
    assert (rule.kind, rule.pause) == (kind, pause)


def test_the_table_is_consistent() -> None:
    # every campaign-stopping code says what to do; no other class pauses anything
    for code, rule in ERRORS.items():
        assert (rule.kind is STOP) == (rule.pause is not None), code
        assert (rule.kind is STOP) == bool(rule.advice), code
        assert (rule.kind is LATER) == (rule.deferrals > 0 and rule.retry_after_s > 0), code
    assert ERRORS[131056].retry_after_s == 6.0
    assert [c for c, r in ERRORS.items() if r.undeliverable] == [131026]
    template_scoped = {c for c, r in ERRORS.items() if r.template_scoped}
    assert template_scoped == {132000, 132001, 132005, 132007, 132012, 132015, 132016}


def test_an_unknown_code_is_final_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    errors._logged.discard(987654)
    with caplog.at_level(logging.WARNING, logger="app.whatsapp.errors"):
        first, second = classify(987654, 400), classify(987654, 500)
    assert first.kind is second.kind is FINAL
    assert [r.getMessage() for r in caplog.records if r.name == "app.whatsapp.errors"] == [
        "Cloud API error code 987654 is not in Herald's table: message-final"
    ]

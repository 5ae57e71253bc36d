"""Every Cloud API error code Herald knows and what dispatch does about it: one table.

Errors arrive in the send response and in status webhooks (`statuses[].errors[].code`);
both go through `classify`, so a code means the same wherever it shows up. Four classes:

- message-final: the message fails with the code and is never re-sent on its own;
- retry-later: the message goes back to pending, not before `retry_after_s` (times
  `backoff` per earlier deferral), and fails with the code past `deferrals` put-backs;
- slow-down: the message goes back to pending and the shared send rate halves, then
  climbs back by itself (app/whatsapp/pacing.py);
- campaign-stopping: the message goes back to pending and every sending campaign the
  cause touches is paused with a reason saying what to do: those using the template for
  a template error, all of them for an account, payment or token error.

Codes not in the table are message-final, logged once per code and process. Titles and
classes follow Meta's error codes page (developers.facebook.com, WhatsApp error codes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from app.models.enums import PauseCode

logger = logging.getLogger(__name__)


class ErrorClass(StrEnum):
    MESSAGE_FINAL = "message-final"
    RETRY_LATER = "retry-later"
    SLOW_DOWN = "slow-down"
    CAMPAIGN_STOPPING = "campaign-stopping"


# Template errors pause the campaigns using the template; the others every sending one.
TEMPLATE_PAUSES = frozenset(
    {PauseCode.TEMPLATE_PAUSED, PauseCode.TEMPLATE_DISABLED, PauseCode.TEMPLATE_MISMATCH}
)


@dataclass(frozen=True)
class Rule:
    kind: ErrorClass
    title: str
    pause: PauseCode | None = None
    advice: str = ""  # campaign-stopping: what the marketer should do
    retry_after_s: float = 0.0
    backoff: float = 1.0
    deferrals: int = 0
    undeliverable: bool = False  # the contact's number is marked invalid

    @property
    def template_scoped(self) -> bool:
        return self.pause in TEMPLATE_PAUSES


@dataclass(frozen=True)
class PauseReason:
    """Why Herald paused a campaign, as stored on it and shown as `Campaign.pauseReason`."""

    code: PauseCode
    error_code: int
    message: str

    def columns(self) -> dict[str, object]:
        return {
            "pause_code": self.code,
            "pause_error_code": self.error_code,
            "pause_message": self.message,
        }


def final(title: str, *, undeliverable: bool = False) -> Rule:
    return Rule(ErrorClass.MESSAGE_FINAL, title, undeliverable=undeliverable)


def later(title: str, after_s: float, *, backoff: float = 1.0, deferrals: int = 5) -> Rule:
    return Rule(
        ErrorClass.RETRY_LATER, title, retry_after_s=after_s, backoff=backoff, deferrals=deferrals
    )


def transient(title: str) -> Rule:
    """A service error on Meta's side: 5, 10, 20 ... 160 s, then failed (about 5 minutes)."""
    return later(title, 5.0, backoff=2.0, deferrals=6)


def slow(title: str) -> Rule:
    return Rule(ErrorClass.SLOW_DOWN, title)


def stop(pause: PauseCode, title: str, advice: str) -> Rule:
    return Rule(ErrorClass.CAMPAIGN_STOPPING, title, pause=pause, advice=advice)


_TOKEN = "Set a valid HERALD_WHATSAPP_ACCESS_TOKEN on the workers, then resume."
_PERMISSION = (
    "The access token lacks a permission (whatsapp_business_messaging): give the app the "
    "permission or set a token that has it, then resume."
)
_MISMATCH = "then resume (or cancel the campaign and create it again with a matching template)."

# The Cloud API error codes, by Meta's groups. The 200-299 range is "API permission".
ERRORS: dict[int, Rule] = {
    # Authorization
    0: stop(PauseCode.ACCESS_TOKEN_INVALID, "AuthException", _TOKEN),
    3: stop(PauseCode.ACCESS_TOKEN_INVALID, "API method", _PERMISSION),
    10: stop(PauseCode.ACCESS_TOKEN_INVALID, "Permission denied", _PERMISSION),
    190: stop(PauseCode.ACCESS_TOKEN_INVALID, "Access token has expired", _TOKEN),
    **{
        code: stop(PauseCode.ACCESS_TOKEN_INVALID, "API permission", _PERMISSION)
        for code in range(200, 300)
    },
    # Throttling
    4: slow("API too many calls"),
    80007: slow("Rate limit issues"),
    130429: slow("Rate limit hit"),
    131048: stop(
        PauseCode.SPAM_RATE_LIMIT,
        "Spam rate limit hit",
        "WhatsApp limits this number because many recent messages were blocked or reported. "
        "Check its quality rating in WhatsApp Manager and resume later, with a narrower "
        "audience or a more relevant message.",
    ),
    131056: later("(Business Account, Consumer Account) pair rate limit hit", 6.0),
    # Integrity
    368: stop(
        PauseCode.ACCOUNT_RESTRICTED,
        "Temporarily blocked for policies violations",
        "The account is blocked for a while for policy violations: see WhatsApp Manager, "
        "and resume once the restriction has ended.",
    ),
    130497: final("Business account is restricted from messaging users in this country"),
    131031: stop(
        PauseCode.ACCOUNT_RESTRICTED,
        "Account has been locked",
        "The WhatsApp Business Account is locked (policy or verification): resolve it in "
        "Business Support Home, then resume.",
    ),
    # Others
    1: transient("API unknown"),
    2: transient("API service"),
    33: stop(
        PauseCode.ACCOUNT_RESTRICTED,
        "Parameter value is not valid (business phone number deleted)",
        "The business phone number was deleted or is wrong: check "
        "HERALD_WHATSAPP_PHONE_NUMBER_ID, then resume.",
    ),
    100: final("Invalid parameter"),
    130472: later("User's number is part of an experiment", 600.0, deferrals=1),
    131000: transient("Something went wrong"),
    131005: stop(PauseCode.ACCESS_TOKEN_INVALID, "Access denied", _PERMISSION),
    131008: final("Required parameter is missing"),
    131009: final("Parameter value is not valid"),
    131016: transient("Service unavailable"),
    131021: final("Recipient cannot be sender"),
    131026: final("Message undeliverable", undeliverable=True),
    131037: stop(
        PauseCode.ACCOUNT_RESTRICTED,
        "WhatsApp provided number needs display name approval",
        "The business phone number's display name awaits approval: get it approved in "
        "WhatsApp Manager, then resume.",
    ),
    131042: stop(
        PauseCode.PAYMENT_REQUIRED,
        "Business eligibility payment issue",
        "WhatsApp cannot bill the account: attach a valid payment method (or raise the "
        "credit line) of the WhatsApp Business Account in Meta Business Manager, then resume.",
    ),
    131045: stop(
        PauseCode.ACCOUNT_RESTRICTED,
        "Incorrect certificate",
        "The business phone number is not registered properly: register it again, then resume.",
    ),
    131047: final("Re-engagement message"),
    131049: final("Meta chose not to deliver (per-user marketing limit)"),
    131050: final("User stopped marketing messages"),
    131051: final("Unsupported message type"),
    131052: final("Media download error"),
    131053: final("Media upload error"),
    131057: slow("Account in maintenance mode"),
    132000: stop(
        PauseCode.TEMPLATE_MISMATCH,
        "Template param count mismatch",
        "The campaign sends a different number of variables than the approved template "
        f"has: align the approved template with the campaign's body, {_MISMATCH}",
    ),
    132001: stop(
        PauseCode.TEMPLATE_MISMATCH,
        "Template does not exist",
        "No approved template has the campaign's name and language: create or get it "
        f"approved under that name and language, {_MISMATCH}",
    ),
    132005: stop(
        PauseCode.TEMPLATE_MISMATCH,
        "Template hydrated text too long",
        "The template with its variables filled in is too long: shorten the template or "
        "the contacts' attribute values it uses, then resume.",
    ),
    132007: stop(
        PauseCode.TEMPLATE_MISMATCH,
        "Template format character policy violated",
        "The template or a variable breaks WhatsApp's format rules (new lines, tabs or "
        "more than 4 spaces in a variable): fix the template or the contacts' attribute "
        "values, then resume.",
    ),
    132012: stop(
        PauseCode.TEMPLATE_MISMATCH,
        "Template parameter format mismatch",
        "A variable's format does not match the approved template (a typed parameter or "
        f"a header): fix the template, {_MISMATCH}",
    ),
    132015: stop(
        PauseCode.TEMPLATE_PAUSED,
        "Template is paused",
        "WhatsApp paused the template for low quality (3 hours the first time, 6 the "
        "second): resume once the pause has ended, or improve the template first.",
    ),
    132016: stop(
        PauseCode.TEMPLATE_DISABLED,
        "Template is disabled",
        "WhatsApp disabled the template for good after repeated low quality: cancel the "
        "campaign and send to the remaining contacts with another template.",
    ),
    133004: transient("Server temporarily unavailable"),
    133010: stop(
        PauseCode.ACCOUNT_RESTRICTED,
        "Phone number not registered",
        "The business phone number is not registered on the Cloud API: register it, then resume.",
    ),
}

# Answers without an error code.
HTTP_429 = slow("HTTP 429 without an error code")
UNAVAILABLE = transient("No answer, or HTTP 5xx without an error code")
REFUSED = final("HTTP 4xx without an error code")
UNKNOWN = final("Not in Herald's table")

# The per-user marketing limit: retryFailedMessages leaves these alone for 24 hours.
MARKETING_LIMITED = 131049

_logged: set[int] = set()


def classify(code: int | None, http_status: int = 0) -> Rule:
    """The rule for an error: by its code when it has one, else by the HTTP status."""
    if code is not None:
        rule = ERRORS.get(code)
        if rule is None:
            if code not in _logged:
                _logged.add(code)
                logger.warning(
                    "Cloud API error code %s is not in Herald's table: message-final", code
                )
            return UNKNOWN
        return rule
    if http_status == 429:
        return HTTP_429
    if http_status == 0 or http_status >= 500:
        return UNAVAILABLE
    return REFUSED


def pause_reason(code: int, rule: Rule) -> PauseReason:
    assert rule.pause is not None, "only campaign-stopping rules pause"
    return PauseReason(rule.pause, code, f"{rule.title} ({code}). {rule.advice}")

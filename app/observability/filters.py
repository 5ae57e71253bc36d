"""Phone numbers never reach a log in full: E.164 numbers become +33*******78.

Masking happens when a record is created (a log record factory), so it holds whichever
handler or formatter writes the record: the message, its arguments, and the exception
attached to it (an IntegrityError's DETAIL names the duplicate phone) are all masked.
"""

from __future__ import annotations

import logging
import re
from typing import Any

# "+" (or "%2B" in a logged URL) then 8 to 15 digits, optionally grouped by spaces, dots or
# dashes ("+33 6 12 34 56 78").
_PHONE = re.compile(r"(?:(?<![\w+])\+|%2[Bb])\d(?:[ .\-]?\d){7,14}(?!\d)")
_SAFE_ARGS = (int, float, bool, type(None))


def _mask_match(match: re.Match[str]) -> str:
    text = match.group()
    sign = "+" if text.startswith("+") else text[:3]
    digits = re.sub(r"\D", "", text[len(sign) :])
    return sign + digits[:2] + "*" * (len(digits) - 4) + digits[-2:]


def mask_phones(text: str) -> str:
    """`+33612345678` → `+33*******78`: country code and last two digits stay readable."""
    return _PHONE.sub(_mask_match, text) if "+" in text or "%2" in text else text


def _mask_arg(arg: Any) -> Any:
    if isinstance(arg, _SAFE_ARGS):
        return arg
    text = arg if isinstance(arg, str) else str(arg)
    masked = mask_phones(text)
    return masked if masked != text else arg


def _mask_exception(exc: BaseException, seen: dict[int, BaseException]) -> BaseException:
    """A stand-in with the same type name, traceback and chain, but masked messages."""
    if id(exc) in seen:
        return seen[id(exc)]
    text = str(exc)
    masked = mask_phones(text)
    cause, context = exc.__cause__, exc.__context__
    if masked == text and cause is None and context is None:
        seen[id(exc)] = exc
        return exc
    kind = type(exc)
    stand_in_type = type(
        kind.__name__,
        (Exception,),
        {
            "__module__": kind.__module__,
            "__qualname__": kind.__qualname__,
            "__str__": lambda _: masked,
        },
    )
    stand_in = stand_in_type()
    seen[id(exc)] = stand_in
    stand_in.__traceback__ = exc.__traceback__
    stand_in.__cause__ = None if cause is None else _mask_exception(cause, seen)
    stand_in.__context__ = None if context is None else _mask_exception(context, seen)
    stand_in.__suppress_context__ = exc.__suppress_context__
    return stand_in


def mask_record(record: logging.LogRecord) -> logging.LogRecord:
    if isinstance(record.msg, str):
        record.msg = mask_phones(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_mask_arg(a) for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: _mask_arg(v) for k, v in record.args.items()}
    if record.exc_info and record.exc_info[1] is not None:
        _, exc, tb = record.exc_info
        masked = _mask_exception(exc, {})
        if masked is not exc:
            record.exc_info = (type(masked), masked, tb)
    return record


_installed = False


def install_phone_masking() -> None:
    """Wrap the log record factory once per process (idempotent)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return mask_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    _installed = True

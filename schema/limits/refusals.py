"""Shape refusals remembered per document, so that a document sent again is refused before
it is parsed: a refused document does not stay in the parse cache
(schema/execution/pipeline.py), and a flood of the same large document would otherwise pay
its parse every time."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from schema.limits.errors import BadArgumentError, LimitError

# Refusals that depend on the document alone, not on the values sent with it.
_DOCUMENT_CODES = frozenset({"QUERY_TOO_DEEP", "TOO_MANY_ALIASES", "TOO_MANY_REPEATS"})


class _Refusals:
    """Shape refusals by document, for a document sent again: it is refused before it is
    parsed (a refused document leaves the parse cache). Kept by a digest of the text, so an
    entry is small whatever the document; a refusal that values could change (a cost) only
    for a request with no variables, as when it was refused. What is
    kept is the message and extensions, never the error: once raised, it holds its
    traceback's frames, and with them the request and its parse tree."""

    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = maxsize
        self._entries: dict[tuple[bytes, str | None], tuple[str, dict[str, Any], bool]] = {}

    @staticmethod
    def _key(query: str, operation_name: str | None) -> tuple[bytes, str | None]:
        digest = hashlib.blake2b(query.encode(), digest_size=16).digest()
        return digest, operation_name

    def remember(
        self,
        query: str,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        error: LimitError,
    ) -> bool:
        extensions = dict(error.extensions or {})
        textual = extensions.get("code") in _DOCUMENT_CODES or (
            isinstance(error, BadArgumentError) and not error.in_variables
        )
        if variables and not textual:
            return False
        if len(self._entries) >= self.maxsize:
            self._entries.clear()
        key = self._key(query, operation_name)
        self._entries[key] = (error.message, extensions, not textual)
        return True

    def known(
        self, query: str, operation_name: str | None, variables: Mapping[str, Any] | None
    ) -> LimitError | None:
        if not self._entries:
            return None
        found = self._entries.get(self._key(query, operation_name))
        if found is None or (found[2] and variables):
            return None
        message, extensions, _ = found
        return LimitError(message, **extensions)


_refusals = _Refusals()


def remember_refusal(
    query: str,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    error: LimitError,
) -> bool:
    """Remember a shape refusal of `query` that a request sending it again will get: one in
    its text (depth, aliases, repeats, a literal argument), or one with no variables sent.
    False for a refusal the next request's values may lift (a variable's value, a cost
    through `first: $n`): the document is not remembered, and stays parsed."""
    return _refusals.remember(query, operation_name, variables, error)


def known_refusal(
    query: str, operation_name: str | None, variables: Mapping[str, Any] | None
) -> LimitError | None:
    """The shape refusal this document already got, if sending it again cannot change it."""
    return _refusals.known(query, operation_name, variables)

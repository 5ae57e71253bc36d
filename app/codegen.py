"""Generated functions that read like written ones: plans (schema/execution/plans/) and row builders
(loaders/) are Python source compiled here.

Each source gets a filename that says what it is (`<herald plan: CampaignPage>`,
`<herald row builder: Message(id, status)>`) and its lines go into `linecache` for as long
as its functions live, so a traceback through generated code shows the generated lines.
Every source compiled is logged at DEBUG on the `herald.codegen` logger
(`HERALD_LOG_LEVEL=DEBUG`); `herald plan 'query { ... }'` prints a document's plan.
"""

from __future__ import annotations

import linecache
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("herald.codegen")
_lock = threading.Lock()  # workers build row builders from several threads


def define(kind: str, title: str, source: str, names: dict[str, Any], entry: str) -> Any:
    """Run `source` (definitions) with `names` as its globals and return its `entry`.

    Two live sources of the same kind and title (one operation's plans for other
    `@skip`/`@include` values, say) get `#2`, `#3`... so each keeps its own lines.
    """
    with _lock:
        filename = f"<herald {kind}: {title}>"
        number = 1
        while filename in linecache.cache:
            number += 1
            filename = f"<herald {kind}: {title} #{number}>"
        lines = source.splitlines(keepends=True)
        linecache.cache[filename] = (len(source), None, lines, filename)
    try:
        exec(compile(source, filename, "exec"), names)  # the source is the generator's own
    except BaseException:
        linecache.cache.pop(filename, None)
        raise
    function = names[entry]
    # The lines go with the functions (a plan evicted from its cache, a builder from its lru).
    weakref.finalize(function, linecache.cache.pop, filename, None)
    logger.debug("compiled %s:\n%s", filename, source)
    return function


def source_of(function: Callable[..., Any]) -> str:
    """The source a generated function was compiled from (what `define` registered)."""
    entry = linecache.cache.get(function.__code__.co_filename)
    if entry is None or len(entry) != 4:
        raise LookupError(f"{function.__qualname__} was not compiled by app.codegen")
    return "".join(entry[2])

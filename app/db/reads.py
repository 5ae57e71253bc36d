"""The read path of read-only requests: asyncpg connections of their own, statements
compiled once per shape, rows read by index.

A small page's statement costs more in SQLAlchemy's connection checkout, execution and row
processing than in the driver (~0.2 ms against 0.03 ms), so reads in autocommit skip them.
Repositories call `rows(session, statement, params)`; a session not reading in autocommit
(a mutation's, a worker's) runs the statement through SQLAlchemy instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque, namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import asyncpg
import orjson
from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Select,
    SelectBase,
    TextClause,
    any_,
    bindparam,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db.engine import SerializedSession, connection_settings, count_statement

logger = logging.getLogger(__name__)

# How long a connection whose statement was cancelled may wait for PostgreSQL to confirm it.
SETTLE_TIMEOUT_S = 5.0


class Rows:
    """A statement's rows and their column names (`fields`). From the driver they are
    `asyncpg.Record`s, read by index, whose enum columns hold `str` values; from SQLAlchemy,
    `Row`s holding the members (`StrEnum`s, equal to the values). `named()` reads both by
    attribute; hot loops read `records` by index (`fields` tells which)."""

    __slots__ = ("fields", "from_driver", "records")

    def __init__(self, fields: tuple[str, ...], records: Sequence[Any], from_driver: bool) -> None:
        self.fields = fields
        self.records = records
        self.from_driver = from_driver

    def __len__(self) -> int:
        return len(self.records)

    def scalar(self) -> Any:
        """The first column of the first row: a `count(*)`'s answer."""
        return self.records[0][0]

    def named(self) -> Sequence[Any]:
        """The rows with attribute access (`row.id`), as SQLAlchemy's `Row` has it."""
        if not self.from_driver:
            return self.records
        make = _named_row(self.fields)._make
        return [make(record) for record in self.records]


@lru_cache(maxsize=256)
def _named_row(fields: tuple[str, ...]) -> Any:
    return namedtuple("Row", fields)  # made per column list, at run time


@dataclass(frozen=True)
class _Sql:
    """A statement compiled once for asyncpg: its text and how to order its parameters."""

    text: str
    fields: tuple[str, ...]  # the result's column names
    names: tuple[str, ...]  # the parameters', in order
    defaults: dict[str, Any]
    processors: dict[str, Callable[[Any], Any]]

    def arguments(self, params: Mapping[str, Any] | None) -> list[Any]:
        values = []
        for name in self.names:
            value = params[name] if params is not None and name in params else self.defaults[name]
            processor = self.processors.get(name)
            values.append(value if processor is None else processor(value))
        return values


# Statements are built once per shape by the repositories; their compiled text is kept
# with them (the statement stays alive as the key, so its id is never reused).
_compiled: dict[int, tuple[Any, _Sql]] = {}


def _sql(statement: Select[Any] | TextClause, dialect: Any) -> _Sql:
    found = _compiled.get(id(statement))
    if found is not None:
        return found[1]
    compiled: Any = statement.compile(dialect=dialect)
    if "POSTCOMPILE" in compiled.string:
        raise ValueError("read statements take arrays (= ANY(:ids)), not expanding IN lists")
    names = tuple(compiled.positiontup or ())
    defaults = {name: compiled.binds[name].effective_value for name in names}
    processors = {}
    for name in names:
        processor = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors[name] = processor
    fields = tuple(statement.selected_columns.keys()) if isinstance(statement, SelectBase) else ()
    sql = _Sql(compiled.string, fields, names, defaults, processors)
    _compiled[id(statement)] = (statement, sql)
    return sql


def _disconnected(exc: BaseException) -> bool:
    """The server closed the connection (a restart, `pg_terminate_backend`), not a bad query."""
    return isinstance(
        exc,
        asyncpg.ConnectionDoesNotExistError
        | asyncpg.AdminShutdownError
        | asyncpg.CannotConnectNowError
        | asyncpg.InterfaceError
        | ConnectionError,
    )


class ReadPool:
    """asyncpg connections for the statements of read-only requests.

    A small page's statement costs more in SQLAlchemy's connection checkout, execution and
    row processing than in the driver (~0.2 ms against 0.03 ms), so reads in autocommit
    skip them. The connections run in autocommit with nothing to reset, so checking one
    out and back is a list operation. A connection the server closed is found by its
    statement: every idle one is then dropped (they are likely dead too, as SQLAlchemy's
    pool does it) and the statement retried once on a new connection. A cancelled
    statement is stopped on the server too, and its connection comes back once the server
    has confirmed it (`_settle`).
    """

    def __init__(
        self, engine: AsyncEngine, size: int, statement_timeout_s: float | None = None
    ) -> None:
        dialect = engine.sync_engine.dialect
        _, kwargs = dialect.create_connect_args(engine.sync_engine.url)
        kwargs.pop("prepared_statement_cache_size", None)
        kwargs.pop("async_creator_fn", None)
        self._connect_kwargs = kwargs
        self._statement_timeout_s = statement_timeout_s
        self.dialect = dialect
        self.size = size
        self._idle: list[asyncpg.Connection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._settling: set[asyncio.Task[None]] = set()  # connections waiting for a cancel
        self._closed = False

    async def _new(self) -> asyncpg.Connection:
        connection = await asyncpg.connect(
            **self._connect_kwargs,
            server_settings={
                **connection_settings(self._statement_timeout_s),
                # The reads are keyset pages and lookups by key, whose best plan does not
                # depend on the values: plan each prepared statement once, not per execution
                # (a page of messages per campaign: 0.5 ms of planning for 0.25 ms of work).
                "plan_cache_mode": "force_generic_plan",
            },
        )
        for name in ("json", "jsonb"):
            await connection.set_type_codec(
                name,
                encoder=_encode_json,
                decoder=orjson.loads,
                schema="pg_catalog",
                format="text",
            )
        return connection

    async def _acquire(self) -> asyncpg.Connection:
        while True:
            if self._idle:
                return self._idle.pop()
            if self._open < self.size:
                self._open += 1
                try:
                    return await self._new()
                except BaseException:
                    self._open -= 1
                    self._wake()
                    raise
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # woken, then cancelled: pass the turn on
                raise

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _release(self, connection: asyncpg.Connection, broken: bool) -> None:
        if broken or self._closed or connection.is_closed():
            self._open -= 1
            connection.terminate()
        else:
            self._idle.append(connection)
        self._wake()

    def _drop_idle(self) -> None:
        for connection in self._idle:
            self._open -= 1
            connection.terminate()
        self._idle.clear()

    async def fetch(self, sql: _Sql, params: Mapping[str, Any] | None) -> list[asyncpg.Record]:
        arguments = sql.arguments(params)
        for attempt in (1, 2):
            connection = await self._acquire()
            try:
                records: list[asyncpg.Record] = await connection.fetch(sql.text, *arguments)
            except asyncio.CancelledError:
                self._settle(connection)
                raise
            except BaseException as exc:
                # PostgreSQL's own errors (a value it refuses) leave the connection ready.
                self._release(connection, broken=not isinstance(exc, asyncpg.PostgresError))
                if attempt == 2 or not _disconnected(exc):
                    raise
                self._drop_idle()
            else:
                self._release(connection, broken=False)
                return records
        raise AssertionError("unreachable")

    def _settle(self, connection: asyncpg.Connection) -> None:
        """Take back a connection whose statement was cancelled (a failed sibling field, the
        time limit) once PostgreSQL has stopped the statement.

        asyncpg asks the server to cancel it, from a task of the connection's own that
        terminating the connection would cancel too: the statement would run on. Until the
        server acknowledges, the connection can run nothing else, so it is neither idle nor
        dropped: a trivial statement waits for the acknowledgement, and a connection whose
        server does not answer within `SETTLE_TIMEOUT_S` is closed.
        """
        task = asyncio.get_running_loop().create_task(self._settled(connection))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settled(self, connection: asyncpg.Connection) -> None:
        broken = True
        try:
            await connection.execute("SELECT 1", timeout=SETTLE_TIMEOUT_S)
            broken = False
        except Exception as exc:
            logger.warning("read connection closed after a cancelled statement: %r", exc)
        finally:
            self._release(connection, broken)

    @property
    def open(self) -> int:
        return self._open

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._settling):
            task.cancel()
        await asyncio.gather(*self._settling, return_exceptions=True)
        idle, self._idle = self._idle, []
        for connection in idle:
            self._open -= 1
            await connection.close()


def in_ids(column: ColumnElement[int]) -> ColumnElement[bool]:
    """`column = ANY(:ids)`: a list of ids as one array parameter, so one prepared statement
    serves any number of them (`rows` takes no expanding IN list)."""
    return column == any_(bindparam("ids", type_=ARRAY(BigInteger)))


def _encode_json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def rows(
    session: AsyncSession,
    statement: Select[Any] | TextClause,
    params: Mapping[str, Any] | None = None,
) -> Rows:
    """The statement's rows. A read-only `SerializedSession` with a read pool takes them
    straight from the driver; otherwise SQLAlchemy runs the statement (see `Rows`).

    For statements built once per shape (repositories cache them): each is compiled once,
    and takes arrays (`= ANY(:ids)`) rather than expanding IN lists.
    """
    if isinstance(session, SerializedSession) and isinstance(
        reads := session.direct_reads, ReadPool
    ):
        session._check_open()
        sql = _sql(statement, reads.dialect)
        count_statement()
        records = await reads.fetch(sql, params)
        # A text statement declares no columns: its records name them.
        fields = sql.fields or (tuple(records[0].keys()) if records else ())
        return Rows(fields, records, from_driver=True)
    result = await session.execute(statement, params)
    return Rows(tuple(result.keys()), result.all(), from_driver=False)

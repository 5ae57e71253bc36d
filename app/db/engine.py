"""Database engine, sessions, and the SQL statement counter that keeps N+1 visible."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import orjson
from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from app.config import Settings

T = TypeVar("T")


@dataclass
class StatementCount:
    """Statements sent to PostgreSQL by the code running in one context (a request, a task)."""

    value: int = 0


_current_count: ContextVar[StatementCount | None] = ContextVar("herald_sql_count", default=None)
_total = StatementCount()


@contextmanager
def count_statements() -> Iterator[StatementCount]:
    """Count every statement executed by this task and the tasks it spawns until exit."""
    counter = StatementCount()
    token = _current_count.set(counter)
    try:
        yield counter
    finally:
        _current_count.reset(token)


@contextmanager
def uncounted() -> Iterator[None]:
    """Keep this task's statements out of the request's count (still in the process total).

    For constant per-request overhead, such as authenticating the caller, that would
    otherwise blur the per-query figures the N+1 tests pin down.
    """
    token = _current_count.set(None)
    try:
        yield
    finally:
        _current_count.reset(token)


def total_statements() -> int:
    """Statements sent by this process since start (for /metrics)."""
    return _total.value


def count_statement(*_: Any) -> None:
    """One more statement sent to PostgreSQL (an engine event, or the read pool)."""
    _total.value += 1
    counter = _current_count.get()
    if counter is not None:
        counter.value += 1


def sqlstate(error: BaseException | None) -> str | None:
    """The SQLSTATE PostgreSQL refused a statement with, whichever way it ran: asyncpg's
    own error (the read pool) or SQLAlchemy's wrapping of it; None for any other error."""
    if isinstance(error, DBAPIError):
        error = error.orig
    elif not isinstance(error, asyncpg.PostgresError):
        return None
    code = getattr(error, "sqlstate", None)
    return code if isinstance(code, str) else None


def connection_settings(statement_timeout_s: float | None) -> dict[str, str]:
    """PostgreSQL settings of every connection a process opens: its name in
    `pg_stat_activity`, and a bound on any one statement. The bound is a backstop behind
    cancellation (a request's time limit cancels its statements): whatever goes wrong, no
    statement runs on long after the work that sent it has given up."""
    found = {"application_name": "herald"}
    if statement_timeout_s is not None:
        found["statement_timeout"] = str(max(1, round(statement_timeout_s * 1000)))
    return found


def create_engine(settings: Settings, statement_timeout_s: float | None = None) -> AsyncEngine:
    engine = create_async_engine(
        settings.async_database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # No ping per checkout (a round trip per request): a connection the server closed
        # is refused at checkout (`_refuse_closed`), and one found dead by its first
        # statement invalidates the whole pool and that statement is retried once on a new
        # one (SerializedSession), so killed connections cost no failed request.
        pool_pre_ping=False,
        # jsonb (contact attributes, payloads) decoded by orjson: ~3x faster on big pages.
        json_deserializer=orjson.loads,
        json_serializer=lambda value: orjson.dumps(value).decode(),
        connect_args={"server_settings": connection_settings(statement_timeout_s)},
    )
    # before_cursor_execute fires once per round trip the driver makes for a statement,
    # including executemany batches, so this is the number the audit cares about.
    event.listen(engine.sync_engine, "before_cursor_execute", count_statement)
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    return engine


def _refuse_closed(_: Any, record: ConnectionPoolEntry, __: Any) -> None:
    """Lend no connection the server has closed while it sat in the pool.

    A restart or `pg_terminate_backend` closes the server's end; the driver sees it at
    once on an idle connection, so this costs no round trip. The pool then discards the
    connection and checks out another (SQLAlchemy's pessimistic disconnect handling). A
    mutation's first statement opens its savepoint, which is never retried: it must not
    land on such a connection.
    """
    driver = record.driver_connection
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


class SerializedSession(AsyncSession):
    """An AsyncSession whose statements queue up instead of colliding, and that survives
    connections the server closed while they sat in the pool.

    GraphQL resolves sibling fields concurrently, so several loaders may dispatch in the
    same tick; a session's single connection can only run one statement at a time.

    A statement that finds its connection dead is retried once on a fresh connection when
    nothing can have been lost: it was the first of its transaction, or the session reads
    in autocommit (`read_only()`). SQLAlchemy invalidates the whole pool on the first
    disconnect it sees, so one retry is enough after a server restart or
    `pg_terminate_backend`.
    """

    def __init__(self, *args: Any, reads: object = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reads = reads
        self._statement_lock = asyncio.Lock()
        self._finished = False
        self._read_only = False
        self._interrupted = False  # a statement was cancelled mid-flight

    def read_only(self) -> None:
        """Run each statement in its own implicit transaction: no BEGIN/COMMIT round trips.

        For read-only operations, before their first statement; statements then see
        their own snapshots, which a page and its count can tolerate.
        """
        if self._read_only or self.in_transaction():
            return
        engine = self.sync_session.bind
        assert isinstance(engine, Engine)
        autocommit = _autocommit.get(engine)
        if autocommit is None:
            autocommit = _autocommit[engine] = engine.execution_options(
                isolation_level="AUTOCOMMIT"
            )
        self.sync_session.bind = autocommit
        self._read_only = True

    @property
    def direct_reads(self) -> object:
        """The pool `app.reads.rows()` reads through, only while reading in autocommit: held
        here, used there (app/db/reads.py depends on this module, not the reverse)."""
        return self._reads if self._read_only else None

    async def _retrying(self, run: Callable[[], Awaitable[T]]) -> T:
        async with self._turn():
            retriable = self._read_only or not self.in_transaction()
            try:
                return await run()
            except DBAPIError as exc:
                if not (retriable and exc.connection_invalidated):
                    raise
            await super().rollback()
            return await run()

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """The session's connection for one statement, after the previous one is done.

        A statement cancelled mid-flight (a failed sibling field's, the time limit's) has
        its connection invalidated by SQLAlchemy, whose transaction then refuses every
        further statement ("Can't reconnect until invalid transaction is rolled back"): the
        next statement rolls it back first. Nothing the request could still commit is lost:
        a cancellation only comes with an error, and a request with errors rolls back.
        """
        async with self._statement_lock:
            self._check_open()
            if self._interrupted:
                await super().rollback()
                self._interrupted = False
            try:
                yield
            except asyncio.CancelledError:
                self._interrupted = True
                raise

    async def finish(self) -> None:
        """Close for good: a straggling loader task must not check out a new connection.

        When one resolver fails, GraphQL stops waiting for its siblings, but a DataLoader
        batch already scheduled still runs; after this it fails instead of leaking.
        """
        async with self._statement_lock:
            self._finished = True
            # A session that never began (a planned query reads through the read pool) has
            # nothing to close; closing it anyway costs a greenlet switch per request.
            if self.in_transaction() or self.sync_session.identity_map:
                await super().close()

    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError("the request's session is finished")

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await self._retrying(lambda: super(SerializedSession, self).execute(*args, **kwargs))

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        return await self._retrying(lambda: super(SerializedSession, self).scalar(*args, **kwargs))

    async def scalars(self, *args: Any, **kwargs: Any) -> Any:
        return await self._retrying(lambda: super(SerializedSession, self).scalars(*args, **kwargs))

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return await self._retrying(lambda: super(SerializedSession, self).get(*args, **kwargs))

    async def flush(self, *args: Any, **kwargs: Any) -> None:
        async with self._turn():
            await super().flush(*args, **kwargs)


_autocommit: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def create_sessionmaker(
    engine: AsyncEngine, reads: object = None
) -> async_sessionmaker[SerializedSession]:
    """Sessions on `engine`; with `reads`, read-only sessions read through that pool."""
    return async_sessionmaker(
        engine, class_=SerializedSession, expire_on_commit=False, autoflush=False, reads=reads
    )

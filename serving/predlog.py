"""The prediction log: every answered request, observed outcomes, and served forecasts.

One database (SQLite in WAL mode at ``state/predlog.db`` by default, PostgreSQL by setting
``predlog.url``), three tables with the same schema on both engines. Monitoring reads them
with plain SQL and never imports this module:

``predictions`` — one row per answered HTTP request (any status)
    ``request_id`` (text, primary key; also the ``X-Request-ID`` response header),
    ``ts`` (timestamp, UTC), ``key_name`` (the API key's *name*, never the key),
    ``endpoint`` (text, e.g. ``forecast``), ``status`` (int HTTP status),
    ``model_version`` (text, null when no model answered), ``request_json`` (text),
    ``response_summary`` (text, JSON), ``latency_ms`` (float, until the log write).

``outcomes`` — observed counts posted to ``/outcomes``; primary key
    ``(week, area_id, category)``, re-posting a row replaces it (idempotent upsert):
    ``week`` (date, Monday), ``area_id``, ``category``, ``count`` (int),
    ``received_at`` (timestamp, UTC), ``key_name``.

``served_forecasts`` — the full forecast table of every model version the service loaded,
    written once per version; primary key ``(model_version, area_id, category, horizon)``:
    ``model_version``, ``data_week`` (date: last observed week), ``area_id``, ``week``
    (date: target Monday), ``category``, ``horizon`` (1–4), ``mean``, ``lower_80``,
    ``upper_80``, ``lower_95``, ``upper_95``.

Durability: a request's row is committed before its response is sent. Rows go through one
writer thread that commits whatever is queued in a single transaction (group commit) and
then resolves each caller's future. With SQLite the default ``synchronous=NORMAL`` in WAL
mode survives a killed process (the commit is in the WAL file in the OS cache) but not a
power loss or kernel crash; ``sqlite_synchronous: FULL`` fsyncs every commit and survives
both, at a lower write rate. On PostgreSQL durability is the server's (``synchronous_commit``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("crimecast.serving.predlog")

FORECAST_VALUE_COLUMNS = ("mean", "lower_80", "upper_80", "lower_95", "upper_95")


def build_tables(schema: str | None = None) -> tuple[sa.MetaData, sa.Table, sa.Table, sa.Table]:
    """The three prediction-log tables (``predictions``, ``outcomes``, ``served_forecasts``)."""
    meta = sa.MetaData(schema=schema)
    predictions = sa.Table(
        "predictions", meta,
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("key_name", sa.String(128), nullable=True),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("request_json", sa.Text, nullable=True),
        sa.Column("response_summary", sa.Text, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=False),
    )
    outcomes = sa.Table(
        "outcomes", meta,
        sa.Column("week", sa.Date, primary_key=True),
        sa.Column("area_id", sa.String(64), primary_key=True),
        sa.Column("category", sa.String(64), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_name", sa.String(128), nullable=True),
    )
    served = sa.Table(
        "served_forecasts", meta,
        sa.Column("model_version", sa.String(64), primary_key=True),
        sa.Column("data_week", sa.Date, nullable=False),
        sa.Column("area_id", sa.String(64), primary_key=True),
        sa.Column("week", sa.Date, nullable=False),
        sa.Column("category", sa.String(64), primary_key=True),
        sa.Column("horizon", sa.Integer, primary_key=True),
        *(sa.Column(name, sa.Float, nullable=False) for name in FORECAST_VALUE_COLUMNS),
    )
    return meta, predictions, outcomes, served


@dataclass(frozen=True)
class RequestRecord:
    """One answered request, as written to ``predictions``."""

    request_id: str
    ts: datetime
    key_name: str | None
    endpoint: str
    status: int
    model_version: str | None
    request_json: str | None
    response_summary: str | None
    latency_ms: float

    def as_row(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass(frozen=True)
class Outcome:
    """An observed count for a past week."""

    week: date
    area_id: str
    category: str
    count: int


def make_engine(url: str, sqlite_synchronous: str = "NORMAL") -> Engine:
    """A SQLAlchemy engine; SQLite gets WAL, the chosen ``synchronous`` level and a busy
    timeout so several worker processes can share one file."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            # Checkpoints (which fsync) run on the checkpointer thread, not inside a commit
            # that a batch of requests is waiting for.
            cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _upsert(engine: Engine, table: sa.Table, rows: list[dict[str, Any]],
            keys: Sequence[str], update: Sequence[str]) -> Any:
    """``INSERT ... ON CONFLICT`` for SQLite and PostgreSQL (same statement shape)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif engine.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise ValueError(f"predlog: unsupported database '{engine.dialect.name}' "
                         "(use sqlite:/// or postgresql+psycopg://)")
    stmt = insert(table)
    if update:
        return stmt.on_conflict_do_update(index_elements=list(keys),
                                          set_={c: stmt.excluded[c] for c in update})
    return stmt.on_conflict_do_nothing(index_elements=list(keys))


class PredictionLog:
    """Group-committing writer of the prediction log.

    ``submit(record)`` returns a future that resolves once the row is committed;
    ``await log.record(record)`` is the same for async handlers. ``upsert_outcomes`` and
    ``store_served_forecasts`` run on the same writer thread, so SQLite sees one writer
    per process.
    """

    def __init__(self, url: str, *, sqlite_synchronous: str = "NORMAL", batch_max: int = 512,
                 schema: str | None = None, checkpoint_seconds: float = 2.0) -> None:
        self.url = url
        self.engine = make_engine(url, sqlite_synchronous)
        self.meta, self.predictions, self.outcomes, self.served = build_tables(schema)
        if schema and self.engine.dialect.name == "postgresql":
            with self.engine.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        self.meta.create_all(self.engine)
        self._batch_max = batch_max
        self._queue: queue.Queue[tuple[str, Any, Any] | None] = (
            queue.Queue())
        self._thread = threading.Thread(target=self._run, name="predlog-writer", daemon=True)
        self._closed = False
        self._stop = threading.Event()
        self._thread.start()
        self._checkpointer: threading.Thread | None = None
        if self.engine.dialect.name == "sqlite":
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, args=(checkpoint_seconds,),
                name="predlog-checkpoint", daemon=True)
            self._checkpointer.start()

    # -- callers ---------------------------------------------------------------------
    def submit(self, record: RequestRecord) -> concurrent.futures.Future[None]:
        """Queue one request row; the future resolves after its transaction commits."""
        return self._put("log", record.as_row())

    async def record(self, record: RequestRecord) -> None:
        """Async form of :meth:`submit`: returns once the row is committed.

        The waiter is a future of the caller's event loop; the writer wakes each loop once
        per committed batch (not once per row), which keeps the cost per request low."""
        if self._closed:
            raise RuntimeError("prediction log is closed")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._queue.put(("log", record.as_row(), _LoopWaiter(loop, waiter)))
        await waiter

    def upsert_outcomes(self, outcomes: Iterable[Outcome], key_name: str | None
                        ) -> concurrent.futures.Future[int]:
        """Insert or replace outcomes keyed by (week, area_id, category); resolves to the
        number of rows written."""
        now = datetime.now(UTC)
        rows = [{"week": o.week, "area_id": o.area_id, "category": o.category,
                 "count": int(o.count), "received_at": now, "key_name": key_name}
                for o in outcomes]
        return self._put("call", lambda conn: self._write_outcomes(conn, rows))

    def store_served_forecasts(self, model_version: str, data_week: date,
                               forecast: pd.DataFrame) -> concurrent.futures.Future[int]:
        """Write a model version's full forecast table once (rows already present for that
        version are kept, so several workers loading the same version write it once)."""
        rows = [
            {"model_version": model_version, "data_week": data_week,
             "area_id": str(r.area_id), "week": pd.Timestamp(r.week).date(),
             "category": str(r.category), "horizon": int(r.horizon),
             **{c: float(getattr(r, c)) for c in FORECAST_VALUE_COLUMNS}}
            for r in forecast.itertuples(index=False)
        ]
        return self._put("call", lambda conn: self._write_served(conn, rows))

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued and stop the writer thread."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._queue.put(None)
        self._thread.join(timeout)
        if self._checkpointer is not None:
            self._checkpointer.join(timeout)
        self.engine.dispose()

    # -- writer and checkpointer threads -----------------------------------------------
    def _checkpoint_loop(self, every: float) -> None:
        """Move the WAL into the database file every few seconds (PASSIVE: never blocks
        the writer; a checkpoint only copies what no reader still needs)."""
        while not self._stop.wait(every):
            try:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except Exception:
                log.warning("prediction-log checkpoint failed; retrying", exc_info=True)

    def _put(self, kind: str, payload: Any) -> concurrent.futures.Future[Any]:
        if self._closed:
            raise RuntimeError("prediction log is closed")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((kind, payload, future))
        return future

    def _write_outcomes(self, conn: Connection, rows: list[dict[str, Any]]) -> int:
        if rows:
            conn.execute(_upsert(self.engine, self.outcomes, rows,
                                 ("week", "area_id", "category"),
                                 ("count", "received_at", "key_name")), rows)
        return len(rows)

    def _write_served(self, conn: Connection, rows: list[dict[str, Any]]) -> int:
        if rows:
            conn.execute(_upsert(self.engine, self.served, rows,
                                 ("model_version", "area_id", "category", "horizon"), ()),
                         rows)
        return len(rows)

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            batch = [item]
            # Drain what queued up while the last commit ran: one transaction for all.
            while len(batch) < self._batch_max:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if None in batch:
                stop = True
            items = [b for b in batch if b is not None]
            logs = [b for b in items if b[0] == "log"]
            calls = [b for b in items if b[0] == "call"]
            if logs:
                self._commit_logs(logs)
            for _, func, future in calls:
                self._commit_call(func, future)

    def _commit_logs(self, logs: list[tuple[str, Any, Any]]) -> None:
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            with self.engine.begin() as conn:
                conn.execute(self.predictions.insert(), [row for _, row, _ in logs])
            outcomes = [(waiter, None) for _, _, waiter in logs]
        except Exception:  # noqa: BLE001 - decided row by row below
            # One bad row must not fail its neighbours: retry one by one.
            for _, row, waiter in logs:
                try:
                    with self.engine.begin() as conn:
                        conn.execute(self.predictions.insert(), [row])
                except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
                    outcomes.append((waiter, exc))
                else:
                    outcomes.append((waiter, None))
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None],
                                                            BaseException | None]]] = {}
        for waiter, exc in outcomes:
            if isinstance(waiter, _LoopWaiter):
                by_loop.setdefault(waiter.loop, []).append((waiter.future, exc))
            else:
                _settle(waiter, None, exc)
        for loop, batch in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_batch, batch)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass

    def _commit_call(self, func: Callable[[Connection], Any],
                     future: concurrent.futures.Future[Any]) -> None:
        try:
            with self.engine.begin() as conn:
                result = func(conn)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
            _settle(future, exc=exc)
        else:
            _settle(future, result)


@dataclass(frozen=True)
class _LoopWaiter:
    """An asyncio future to resolve on its own event loop."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


def _settle_batch(batch: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    """Runs on the waiters' event loop: resolve every future of one committed batch."""
    for future, exc in batch:
        if future.done():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(None)


def _settle(future: concurrent.futures.Future[Any], result: Any = None,
            exc: BaseException | None = None) -> None:
    if future.set_running_or_notify_cancel():
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)


def summary_json(payload: dict[str, Any]) -> str:
    """Compact JSON for the ``response_summary`` column."""
    return json.dumps(payload, separators=(",", ":"), default=str)

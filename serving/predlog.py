"""The prediction log: every answered request, ground truth, and served forecasts.

One database (SQLite in WAL mode at ``state/predlog.db`` by default, PostgreSQL by setting
``predlog.url``), the same schema on both engines. Monitoring reads it with plain SQL and
never imports this module:

``predictions`` — one row per answered HTTP request (any status)
    ``request_id`` (text, primary key; also the ``X-Request-ID`` response header),
    ``ts`` (timestamp, UTC), ``key_name`` (the API key's *name*, never the key),
    ``endpoint`` (text: a known endpoint name, or ``unknown``; never the caller's path),
    ``status`` (int HTTP status), ``model_version`` (text, null when no model answered),
    ``request_json`` (text), ``response_summary`` (text, JSON), ``latency_ms`` (float,
    until the log write).

``outcomes_history`` / ``outcomes`` — observed counts posted to ``/outcomes``, as a
    :class:`Ledger`: every write is appended to ``outcomes_history`` (``seq``, ``week``,
    ``area_id``, ``category``, ``count``, ``previous_count`` (null for the first value),
    ``recorded_at``, ``key_name``, ``request_id``) and nothing is ever overwritten; the
    view ``outcomes`` (``week, area_id, category, count, recorded_at, key_name``) is the
    latest value per ``(week, area_id, category)``.

``dosage_history`` / ``dosage`` — delivered interventions (``/dosage`` and ``crimecast
    dosage import``), the same kind of :class:`Ledger`: key ``(week, area_id, kind,
    source)``, value ``amount`` (``previous_amount`` in the history).

``served_forecasts`` — the full forecast table of every model version the service loaded,
    written once per version; primary key ``(model_version, area_id, category, horizon)``:
    ``model_version``, ``data_week`` (date: last observed week), ``area_id``, ``week``
    (date: target Monday), ``category``, ``horizon`` (1–4), ``mean``, ``lower_80``,
    ``upper_80``, ``lower_95``, ``upper_95``.

``serving_generation`` / ``serving_workers`` — the shared model-version signal: one row
    per alias (``alias``, ``version``, ``generation``, ``requested_at``, ``requested_by``)
    that every worker watches, and one row per live worker (``worker_id``, ``host``,
    ``pid``, ``version``, ``started_at``, ``heartbeat_at``) saying what it serves.

``service_events`` — operational alerts of the service (``seq``, ``ts``, ``worker_id``,
    ``kind``, ``message``), e.g. ``keys_file_invalid``.

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
import hashlib
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


@dataclass(frozen=True)
class Ledger:
    """A table of values that are appended, never overwritten: ground truth
    (``/outcomes``) and any other audited input (e.g. dosage) use the same mechanism.

    ``keys`` and ``values`` are ``(column, SQLAlchemy type)`` pairs. The ledger owns
    ``<name>_history`` (``seq`` autoincrement, the key and value columns,
    ``previous_<value>`` (null for a key's first write), ``recorded_at`` (UTC),
    ``key_name`` (who: the API key's name), ``request_id``) and a view ``<name>`` with the
    latest row per key (key and value columns, ``recorded_at``, ``key_name``). Write with
    :meth:`PredictionLog.append`; a new ledger is one constant added to :data:`LEDGERS`.
    """

    name: str
    keys: tuple[tuple[str, Any], ...]
    values: tuple[tuple[str, Any], ...]

    @property
    def history_name(self) -> str:
        return f"{self.name}_history"

    @property
    def key_columns(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.keys)

    @property
    def value_columns(self) -> tuple[str, ...]:
        return tuple(v for v, _ in self.values)

    def history_table(self, meta: sa.MetaData) -> sa.Table:
        return sa.Table(
            self.history_name, meta,
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
            *(sa.Column(k, t, nullable=False) for k, t in self.keys),
            *(sa.Column(v, t, nullable=False) for v, t in self.values),
            *(sa.Column(f"previous_{v}", t, nullable=True) for v, t in self.values),
            sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("key_name", sa.String(128), nullable=True),
            sa.Column("request_id", sa.String(64), nullable=True),
            sa.Index(f"ix_{self.history_name}_key", *self.key_columns, "seq"),
        )

    def _q(self, schema: str | None, name: str) -> str:
        return f'"{schema}"."{name}"' if schema else f'"{name}"'

    def view_sql(self, schema: str | None) -> str:
        """``SELECT`` of the latest row per key (the body of the ``<name>`` view)."""
        history = self._q(schema, self.history_name)
        same_key = " AND ".join(f'g."{k}" = h."{k}"' for k in self.key_columns)
        columns = ", ".join(f'h."{c}"' for c in (*self.key_columns, *self.value_columns,
                                                  "recorded_at", "key_name"))
        return (f"SELECT {columns} FROM {history} h WHERE h.seq = "
                f"(SELECT max(g.seq) FROM {history} g WHERE {same_key})")

    def insert_sql(self, schema: str | None, dialect: sa.engine.Dialect) -> str:
        """One row appended with its key's latest values as ``previous_*``, in a single
        statement (so the old value and the append are one atomic step)."""
        history = self._q(schema, self.history_name)
        types = dict(self.keys + self.values)
        types.update(recorded_at=sa.DateTime(timezone=True), key_name=sa.String(128),
                     request_id=sa.String(64))

        def bind(column: str, name: str | None = None) -> str:
            # PostgreSQL cannot infer the type of a parameter in a SELECT list.
            if dialect.name == "postgresql":
                return f"CAST(:{name or column} AS {types[column].compile(dialect=dialect)})"
            return f":{name or column}"

        same_key = " AND ".join(f'g."{k}" = {bind(k, "key_" + k)}' for k in self.key_columns)
        previous = [f'(SELECT g."{v}" FROM {history} g WHERE {same_key} '
                    f"ORDER BY g.seq DESC LIMIT 1)" for v in self.value_columns]
        names = [*self.key_columns, *self.value_columns,
                 *(f"previous_{v}" for v in self.value_columns),
                 "recorded_at", "key_name", "request_id"]
        binds = [*(bind(k) for k in self.key_columns), *(bind(v) for v in self.value_columns),
                 *previous, bind("recorded_at"), bind("key_name"), bind("request_id")]
        return (f"INSERT INTO {history} ({', '.join(chr(34) + n + chr(34) for n in names)}) "
                f"SELECT {', '.join(binds)}")

    def create(self, conn: Connection, schema: str | None) -> None:
        """Create the view, first moving a pre-ledger table of the same name (one row per
        key, e.g. the old ``outcomes`` upsert table) into the history."""
        inspector = sa.inspect(conn)
        if self.name in inspector.get_table_names(schema=schema):
            old = self._q(schema, self.name)
            shared = [c["name"] for c in inspector.get_columns(self.name, schema=schema)]
            when = "received_at" if "received_at" in shared else None
            who = "key_name" if "key_name" in shared else "NULL"
            columns = ", ".join(f'"{c}"' for c in (*self.key_columns, *self.value_columns))
            conn.exec_driver_sql(
                f"INSERT INTO {self._q(schema, self.history_name)} "
                f'({columns}, "recorded_at", "key_name") '
                f"SELECT {columns}, {when or 'CURRENT_TIMESTAMP'}, {who} FROM {old}")
            conn.exec_driver_sql(f"DROP TABLE {old}")
            log.warning("moved the old %s table into %s (history starts here)", self.name,
                        self.history_name)
        if self.name not in inspector.get_view_names(schema=schema):
            conn.exec_driver_sql(f"CREATE VIEW {self._q(schema, self.name)} AS "
                                 f"{self.view_sql(schema)}")


#: Ground truth posted to ``/outcomes``: observed count per (week, area, category).
OUTCOMES = Ledger("outcomes",
                  keys=(("week", sa.Date()), ("area_id", sa.String(64)),
                        ("category", sa.String(64))),
                  values=(("count", sa.Integer()),))
#: Delivered interventions (``/dosage``, ``crimecast dosage import``; serving/dosage.py).
DOSAGE = Ledger("dosage",
                keys=(("week", sa.Date()), ("area_id", sa.String(64)), ("kind", sa.String(32)),
                      ("source", sa.String(64))),
                values=(("amount", sa.Float()),))
#: Every ledger of the prediction log (created at start).
LEDGERS: tuple[Ledger, ...] = (OUTCOMES, DOSAGE)


@dataclass(frozen=True)
class Tables:
    """The prediction log's tables (``ledgers``: history table per ledger name)."""

    meta: sa.MetaData
    predictions: sa.Table
    served: sa.Table
    generation: sa.Table
    workers: sa.Table
    events: sa.Table
    ledgers: dict[str, sa.Table]


def build_tables(schema: str | None = None) -> Tables:
    """Every table of the prediction log (ledger views are created separately)."""
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
    generation = sa.Table(
        "serving_generation", meta,
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=True),
    )
    workers = sa.Table(
        "serving_workers", meta,
        sa.Column("worker_id", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    )
    events = sa.Table(
        "service_events", meta,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("worker_id", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )
    ledgers = {ledger.name: ledger.history_table(meta) for ledger in LEDGERS}
    return Tables(meta, predictions, served, generation, workers, events, ledgers)


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

    def as_row(self) -> dict[str, Any]:
        return {"week": self.week, "area_id": self.area_id, "category": self.category,
                "count": int(self.count)}


def make_engine(url: str, sqlite_synchronous: str = "NORMAL",
                wal_limit_bytes: int = 16 * 1024 * 1024) -> Engine:
    """A SQLAlchemy engine; SQLite gets WAL, the chosen ``synchronous`` level, a busy
    timeout so several worker processes can share one file, and ``journal_size_limit``
    (what a reset WAL is truncated to)."""
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
            cursor.execute(f"PRAGMA journal_size_limit={int(wal_limit_bytes)}")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _execute(conn: Connection, statement: Any, rows: list[dict[str, Any]] | None = None
             ) -> None:
    conn.execute(statement, rows) if rows is not None else conn.execute(statement)


def _lock_key(name: str) -> int:
    """A stable signed 63-bit advisory-lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


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
    ``await log.record(record)`` is the same for async handlers. Ledger appends,
    ``store_served_forecasts``, heartbeats and events run on the same writer thread, so
    SQLite sees one writer per process.
    """

    def __init__(self, url: str, *, sqlite_synchronous: str = "NORMAL", batch_max: int = 512,
                 schema: str | None = None, checkpoint_seconds: float = 2.0,
                 wal_limit_bytes: int = 16 * 1024 * 1024) -> None:
        from crimecast.lifecycle.tuning import storage_lock

        self.url = url
        self.schema = schema
        self.engine = make_engine(url, sqlite_synchronous, wal_limit_bytes)
        self.tables = build_tables(schema)
        self.predictions, self.served = self.tables.predictions, self.tables.served
        # Several workers start at once on one database: create the schema under one lock
        # (PostgreSQL advisory lock / flock beside the SQLite file), as tuning does.
        with storage_lock(url), self.engine.begin() as conn:
            if schema and self.engine.dialect.name == "postgresql":
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            self.tables.meta.create_all(conn)
            for ledger in LEDGERS:
                ledger.create(conn, schema)
        self._wal_limit = wal_limit_bytes
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

    def append(self, ledger: Ledger, rows: Iterable[dict[str, Any]], key_name: str | None,
               request_id: str | None = None) -> concurrent.futures.Future[int]:
        """Append ``rows`` (dicts of the ledger's key and value columns) to its history,
        each with the key's previous values, who (``key_name``) and when; resolves to the
        number of rows written. Nothing is overwritten: the ledger's view shows the latest."""
        now = datetime.now(UTC)
        columns = (*ledger.key_columns, *ledger.value_columns)
        batch = [{**{c: row[c] for c in columns},
                  **{f"key_{k}": row[k] for k in ledger.key_columns},
                  "recorded_at": now, "key_name": key_name, "request_id": request_id}
                 for row in rows]
        statement = sa.text(ledger.insert_sql(self.schema, self.engine.dialect))

        def write(conn: Connection) -> int:
            if self.engine.dialect.name == "postgresql":
                # Concurrent appends to one ledger (several workers) see each other's rows.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"),
                             {"k": _lock_key(ledger.history_name)})
            for row in batch:  # row by row: a key repeated in one batch chains correctly
                conn.execute(statement, row)
            return len(batch)

        return self._put("call", write)

    def upsert_outcomes(self, outcomes: Iterable[Outcome], key_name: str | None,
                        request_id: str | None = None) -> concurrent.futures.Future[int]:
        """Append observed counts to the ``outcomes`` ledger (the latest per key wins)."""
        return self.append(OUTCOMES, [o.as_row() for o in outcomes], key_name, request_id)

    def record_event(self, kind: str, message: str, worker_id: str | None = None,
                     once: bool = False) -> concurrent.futures.Future[None]:
        """Append an operational alert to ``service_events``; with ``once``, not when the
        same kind and message is already there (several workers see the same fault)."""
        table = self.tables.events
        row = {"ts": datetime.now(UTC), "worker_id": worker_id, "kind": kind,
               "message": message[:4000]}

        def write(conn: Connection) -> None:
            if once and conn.execute(sa.select(sa.func.count()).select_from(table).where(
                    table.c.kind == kind, table.c.message == row["message"])).scalar_one():
                return
            conn.execute(table.insert(), [row])

        return self._put("call", write)

    # -- the shared model-version signal ----------------------------------------------
    def publish_version(self, alias: str, version: str, requested_by: str | None
                        ) -> concurrent.futures.Future[int]:
        """Tell every worker to serve ``version`` for ``alias``: bump the alias's
        generation row; resolves to the new generation number."""
        table = self.tables.generation

        def write(conn: Connection) -> int:
            current = conn.execute(sa.select(table.c.generation).where(
                table.c.alias == alias)).scalar_one_or_none()
            row = {"alias": alias, "version": version, "generation": (current or 0) + 1,
                   "requested_at": datetime.now(UTC), "requested_by": requested_by}
            conn.execute(_upsert(self.engine, table, [row], ("alias",),
                                 ("version", "generation", "requested_at", "requested_by")),
                         [row])
            return row["generation"]

        return self._put("call", write)

    def published_version(self, alias: str) -> tuple[str, int] | None:
        """``(version, generation)`` last published for ``alias``, or None (a plain read,
        off the writer thread: WAL readers never wait for the writer)."""
        table = self.tables.generation
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(table.c.version, table.c.generation).where(
                table.c.alias == alias)).first()
        return None if row is None else (str(row[0]), int(row[1]))

    def heartbeat(self, worker_id: str, host: str, pid: int, version: str | None,
                  started_at: datetime) -> concurrent.futures.Future[None]:
        """Record that this worker is alive and which version it serves."""
        table = self.tables.workers
        row = {"worker_id": worker_id, "host": host, "pid": pid, "version": version,
               "started_at": started_at, "heartbeat_at": datetime.now(UTC)}
        statement = _upsert(self.engine, table, [row], ("worker_id",),
                            ("host", "pid", "version", "started_at", "heartbeat_at"))
        return self._put("call", lambda conn: _execute(conn, statement, [row]))

    def forget_worker(self, worker_id: str) -> concurrent.futures.Future[None]:
        table = self.tables.workers
        return self._put("call", lambda conn: _execute(
            conn, table.delete().where(table.c.worker_id == worker_id)))

    def live_workers(self, max_age_seconds: float) -> list[dict[str, Any]]:
        """Workers whose heartbeat is at most ``max_age_seconds`` old, by id."""
        table = self.tables.workers
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(table).order_by(table.c.worker_id)).mappings().all()
        now = datetime.now(UTC)
        live = []
        for row in rows:
            beat = row["heartbeat_at"]
            beat = beat if beat.tzinfo else beat.replace(tzinfo=UTC)  # SQLite drops the zone
            if (now - beat).total_seconds() <= max_age_seconds:
                live.append(dict(row))
        return live

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
        """Bound the WAL: every ``every`` seconds a PASSIVE checkpoint copies the WAL into
        the database (never blocks the writer; the fsync happens here, not in a commit).
        Under sustained writes a PASSIVE checkpoint never catches up with the writers, so
        the WAL never restarts and grows; once it is larger than ``journal_size_limit`` a
        TRUNCATE checkpoint (copy the few frames left, reset the WAL to 0 bytes) runs, with
        a short busy timeout so it waits for at most one commit and retries later."""
        wal = Path(f"{self.engine.url.database}-wal")
        while not self._stop.wait(every):
            try:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
                    if wal.exists() and wal.stat().st_size > self._wal_limit:
                        conn.exec_driver_sql("PRAGMA busy_timeout=200")
                        try:
                            busy = conn.exec_driver_sql(
                                "PRAGMA wal_checkpoint(TRUNCATE)").one()[0]
                        finally:
                            conn.exec_driver_sql("PRAGMA busy_timeout=30000")
                        if busy:
                            log.info("WAL truncate skipped (busy); retrying in %.1f s", every)
            except Exception:
                log.warning("prediction-log checkpoint failed; retrying", exc_info=True)

    def wal_bytes(self) -> int | None:
        """Current size of the SQLite WAL file (None on other databases)."""
        if self.engine.dialect.name != "sqlite":
            return None
        wal = Path(f"{self.engine.url.database}-wal")
        return wal.stat().st_size if wal.exists() else 0

    def _put(self, kind: str, payload: Any) -> concurrent.futures.Future[Any]:
        if self._closed:
            raise RuntimeError("prediction log is closed")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((kind, payload, future))
        return future

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

"""The prediction log: group commit, idempotent outcomes, served forecasts, on SQLite
(default) and PostgreSQL (same schema)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from serving.predlog import Outcome, PredictionLog, RequestRecord


def _record(i: int) -> RequestRecord:
    return RequestRecord(request_id=f"req-{i}-{uuid.uuid4().hex[:6]}", ts=datetime.now(UTC),
                         key_name="tester", endpoint="forecast", status=200, model_version="3",
                         request_json='{"horizon": 1}', response_summary='{"rows": 2}',
                         latency_ms=1.5)


def _forecast() -> pd.DataFrame:
    return pd.DataFrame({
        "area_id": ["a", "b"], "week": pd.to_datetime(["2024-01-08"] * 2),
        "category": ["violent"] * 2, "horizon": [1, 1], "mean": [1.0, 2.0],
        "lower_80": [0.0, 1.0], "upper_80": [2.0, 3.0], "lower_95": [0.0, 0.0],
        "upper_95": [3.0, 4.0]})


def _exercise(log: PredictionLog) -> None:
    async def many() -> list[RequestRecord]:
        records = [_record(i) for i in range(300)]
        await asyncio.gather(*(log.record(r) for r in records))
        return records

    records = asyncio.run(many())
    with log.engine.connect() as conn:
        ids = set(conn.execute(sa.select(log.predictions.c.request_id)).scalars())
    # Every awaited record is committed by the time its future resolves.
    assert {r.request_id for r in records} <= ids

    week = date(2024, 1, 1)
    log.upsert_outcomes([Outcome(week, "a", "violent", 3)], "first-key").result()
    log.upsert_outcomes([Outcome(week, "a", "violent", 5), Outcome(week, "b", "violent", 0)],
                        "second-key", request_id="req-x").result()
    with log.engine.connect() as conn:
        latest = dict(conn.execute(sa.text(f"SELECT area_id, count FROM {_name(log, 'outcomes')}"))
                      .all())
        history = conn.execute(sa.text(
            "SELECT area_id, count, previous_count, key_name, request_id FROM "
            f"{_name(log, 'outcomes_history')} ORDER BY seq")).all()
    assert latest == {"a": 5, "b": 0}  # the view holds the latest value per key
    assert [tuple(r) for r in history] == [("a", 3, None, "first-key", None),
                                           ("a", 5, 3, "second-key", "req-x"),
                                           ("b", 0, None, "second-key", "req-x")]

    for _ in range(2):  # two workers loading the same version write it once
        log.store_served_forecasts("3", date(2024, 1, 1), _forecast()).result()
    with log.engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(log.served)).scalar_one()
    assert count == 2


def _name(log: PredictionLog, table: str) -> str:
    return f'"{log.schema}"."{table}"' if log.schema else table


def test_sqlite_log_commits_before_acknowledging_and_upserts_outcomes(tmp_path: Path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path / 'state' / 'predlog.db'}")
    try:
        _exercise(log)
        with log.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        log.close()


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    url = os.environ.get("CRIMECAST_TEST_PG_URL")
    if not url:
        pytest.skip("CRIMECAST_TEST_PG_URL not set")
    schema = f"predlog_test_{uuid.uuid4().hex[:8]}"
    yield url, schema
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.mark.postgres
def test_postgres_log_has_the_same_behaviour(pg_schema: tuple[str, str]) -> None:
    url, schema = pg_schema
    log = PredictionLog(url, schema=schema)
    try:
        _exercise(log)
    finally:
        log.close()


def test_an_old_outcomes_table_moves_into_the_history(tmp_path: Path) -> None:
    """A prediction log written before the ledger existed keeps its outcomes."""
    path = tmp_path / "predlog.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE outcomes (week DATE, area_id TEXT, category TEXT, "
                             "count INTEGER, received_at TIMESTAMP, key_name TEXT, "
                             "PRIMARY KEY (week, area_id, category))")
        conn.exec_driver_sql("INSERT INTO outcomes VALUES ('2024-01-01', 'a', 'violent', 7, "
                             "'2024-01-09 10:00:00', 'old-app')")
    engine.dispose()
    log = PredictionLog(f"sqlite:///{path}")
    try:
        log.upsert_outcomes([Outcome(date(2024, 1, 1), "a", "violent", 8)], "new-app").result()
        with log.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count, key_name FROM outcomes").all() == [
                (8, "new-app")]
            assert conn.exec_driver_sql(
                "SELECT count, previous_count, key_name FROM outcomes_history ORDER BY seq"
            ).all() == [(7, None, "old-app"), (8, 7, "new-app")]
    finally:
        log.close()


def test_wal_is_truncated_when_it_outgrows_the_limit(tmp_path: Path) -> None:
    """A sustained stream of commits leaves the WAL bounded by journal_size_limit."""
    log = PredictionLog(f"sqlite:///{tmp_path / 'predlog.db'}", checkpoint_seconds=0.2,
                        wal_limit_bytes=256 * 1024)

    async def stream() -> int:
        peak = 0
        for batch in range(40):
            await asyncio.gather(*(log.record(_record(batch * 100 + i)) for i in range(100)))
            peak = max(peak, log.wal_bytes() or 0)
            await asyncio.sleep(0.02)
        return peak

    try:
        asyncio.run(stream())
        deadline = time.monotonic() + 5
        while (log.wal_bytes() or 0) > 256 * 1024 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (log.wal_bytes() or 0) <= 256 * 1024
    finally:
        log.close()


def test_monitoring_reads_the_latest_outcomes_through_the_view(tmp_path: Path) -> None:
    from monitoring.frames import read_prediction_log

    url = f"sqlite:///{tmp_path / 'predlog.db'}"
    log = PredictionLog(url)
    try:
        week = date(2024, 1, 1)
        log.upsert_outcomes([Outcome(week, "a", "violent", 3)], "k").result()
        log.upsert_outcomes([Outcome(week, "a", "violent", 6)], "k").result()
    finally:
        log.close()
    _, outcomes = read_prediction_log(url)  # an absolute path: sqlite:////tmp/...
    assert outcomes[["area_id", "count"]].to_dict("records") == [{"area_id": "a", "count": 6}]


def test_an_alert_seen_by_several_workers_is_recorded_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'predlog.db'}"
    workers = [PredictionLog(url), PredictionLog(url)]
    try:
        for number, log in enumerate(workers):
            log.record_event("keys_file_invalid", "bad file (changed T1)", f"w{number}",
                             once=True).result()
        workers[0].record_event("keys_file_invalid", "bad file (changed T2)", "w0",
                                once=True).result()
        with workers[0].engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT message FROM service_events").all()
    finally:
        for log in workers:
            log.close()
    assert [r[0] for r in rows] == ["bad file (changed T1)", "bad file (changed T2)"]

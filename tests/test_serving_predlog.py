"""The prediction log: group commit, idempotent outcomes, served forecasts, on SQLite
(default) and PostgreSQL (same schema)."""

from __future__ import annotations

import asyncio
import os
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
    log.upsert_outcomes([Outcome(week, "a", "violent", 3)], "tester").result()
    log.upsert_outcomes([Outcome(week, "a", "violent", 5), Outcome(week, "b", "violent", 0)],
                        "tester").result()
    with log.engine.connect() as conn:
        rows = dict(conn.execute(sa.select(log.outcomes.c.area_id, log.outcomes.c.count)).all())
    assert rows == {"a": 5, "b": 0}  # re-posting replaced, no duplicate row

    for _ in range(2):  # two workers loading the same version write it once
        log.store_served_forecasts("3", date(2024, 1, 1), _forecast()).result()
    with log.engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(log.served)).scalar_one()
    assert count == 2


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

"""The dosage record: append-only, in the prediction-log database.

Table ``dosage`` (same schema on SQLite and PostgreSQL), one row per recorded value,
never updated or deleted: ``id`` (autoincrement), ``week`` (date, Monday), ``area_id``,
``kind`` (:data:`crimecast.dosage.DOSAGE_KINDS`), ``amount`` (float), ``source`` (short
label), ``recorded_at`` (timestamp, UTC), ``recorded_by`` (the API key's name or
``cli:<user>``; never a key).

Recording a value again for the same ``(week, area_id, kind, source)`` keeps the earlier
row as history and makes the new one current (the latest ``id``); the write reports how
many values it superseded, so nothing is replaced silently. Monitoring reads the current
values with plain SQL (``monitoring/dosage.py``) and never imports this module; this
module is the table's only writer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crimecast.dosage import DOSAGE_COLUMNS

KEY = ("week", "area_id", "kind", "source")


def dosage_table(meta: sa.MetaData) -> sa.Table:
    return sa.Table(
        "dosage", meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("week", sa.Date, nullable=False, index=True),
        sa.Column("area_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("amount", sa.Float, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(128), nullable=True),
    )


class DosageStore:
    """Append and read dosage rows on ``engine`` (tables created when missing)."""

    def __init__(self, engine: Engine, schema: str | None = None) -> None:
        self.engine = engine
        self.meta = sa.MetaData(schema=schema)
        self.table = dosage_table(self.meta)
        self.meta.create_all(engine)

    def append(self, rows: pd.DataFrame, recorded_by: str | None) -> dict[str, int]:
        """Append validated rows (:func:`crimecast.dosage.validate_dosage`) in one
        transaction. Returns ``{"written", "superseded"}``: rows added, and how many of
        them replace an earlier current value for the same (week, area, kind, source)."""
        if rows.empty:
            return {"written": 0, "superseded": 0}
        now = datetime.now(UTC)
        records: list[dict[str, Any]] = [
            {"week": pd.Timestamp(r.week).date(), "area_id": str(r.area_id),
             "kind": str(r.kind), "amount": float(r.amount), "source": str(r.source),
             "recorded_at": now, "recorded_by": recorded_by}
            for r in rows[list(DOSAGE_COLUMNS)].itertuples(index=False)]
        keys = {tuple(str(rec[k]) for k in KEY) for rec in records}
        weeks = sorted({rec["week"] for rec in records})
        with self.engine.begin() as conn:
            existing = conn.execute(
                sa.select(*(self.table.c[k] for k in KEY)).distinct()
                .where(self.table.c.week.in_(weeks))).all()
            superseded = len(keys & {tuple(str(v) for v in row) for row in existing})
            conn.execute(sa.insert(self.table), records)
        return {"written": len(records), "superseded": superseded}

    def history(self) -> pd.DataFrame:
        """Every recorded row, oldest first."""
        with self.engine.connect() as conn:
            return pd.read_sql(sa.select(self.table).order_by(self.table.c.id), conn)

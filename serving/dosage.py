"""Recording dosage: the ``dosage`` ledger of the prediction log.

Dosage rows (validated against :mod:`crimecast.dosage`) are appended to the prediction
log's :data:`serving.predlog.DOSAGE` ledger, the same append-only mechanism as
``/outcomes``: ``dosage_history`` keeps every write with who (``key_name``: the API key's
name or ``cli:<user>``), when and the value it replaced (``previous_amount``); the view
``dosage`` is the current value per ``(week, area_id, kind, source)``. Nothing is
replaced silently: :func:`record_dosage` reports how many rows superseded an earlier
value. ``/dosage`` (serving.service) and ``crimecast dosage import`` both write through
here; monitoring reads the view with plain SQL (``monitoring/dosage.py``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from crimecast.dosage import DOSAGE_COLUMNS
from serving.predlog import DOSAGE, PredictionLog


def dosage_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Ledger rows from validated dosage (``week`` as a date, ``amount`` a float)."""
    return [{"week": pd.Timestamp(r.week).date(), "area_id": str(r.area_id),
             "kind": str(r.kind), "amount": float(r.amount), "source": str(r.source)}
            for r in frame[list(DOSAGE_COLUMNS)].itertuples(index=False)]


def superseded(log: PredictionLog, request_id: str) -> int:
    """How many rows written under ``request_id`` replaced an earlier value."""
    history = log.tables.ledgers[DOSAGE.name]
    with log.engine.connect() as conn:
        return int(conn.execute(
            sa.select(sa.func.count()).select_from(history)
            .where(history.c.request_id == request_id)
            .where(history.c.previous_amount.is_not(None))).scalar_one())


def record_dosage(log: PredictionLog, frame: pd.DataFrame, key_name: str | None,
                  request_id: str) -> dict[str, int]:
    """Append validated rows; returns ``{"written", "superseded"}``."""
    written = log.append(DOSAGE, dosage_rows(frame), key_name, request_id).result()
    return {"written": written, "superseded": superseded(log, request_id)}

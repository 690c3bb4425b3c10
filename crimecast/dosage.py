"""Dosage: what was actually delivered where, week by week (the intervention record).

The contract (DESIGN "dosage / interventions"): one row per ``(week, area_id, kind,
amount, source)``:

- ``week``: the Monday of the week it was delivered (not in the future);
- ``area_id``: an area of the city;
- ``kind``: one of :data:`DOSAGE_KINDS` — ``patrol_minutes`` (patrol time spent in the
  area), ``outreach_contacts`` (outreach workers' contacts), ``programme_enrolments``
  (people enrolled in a support programme from the area);
- ``amount``: a finite number ≥ 0 in the kind's unit;
- ``source``: a short label of who reported it (e.g. ``cad-export``, ``outreach-team-3``),
  never free text: names and addresses have no place here.

:func:`validate_dosage` checks a frame against it and lists every problem with its row
and column, so ``crimecast dosage import`` and ``/dosage`` reject a file or body whole
and say what to fix. Storage (append-only, history kept) is ``serving/dosage.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

DOSAGE_KINDS: tuple[str, ...] = ("patrol_minutes", "outreach_contacts", "programme_enrolments")
DOSAGE_COLUMNS: tuple[str, ...] = ("week", "area_id", "kind", "amount", "source")
MAX_AMOUNT = 10_000_000.0
# No spaces: a label such as "cad-export" or "outreach-team-3", never a person's name.
_SOURCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,63}$")


@dataclass(frozen=True)
class DosageProblem:
    """One invalid value: ``row`` (0-based, in the input's order), ``column``, why."""

    row: int
    column: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row + 1}, column '{self.column}': {self.message}"


def validate_dosage(frame: pd.DataFrame, area_ids: Iterable[str],
                    today: pd.Timestamp | None = None
                    ) -> tuple[pd.DataFrame, list[DosageProblem]]:
    """Check ``frame`` against the dosage contract.

    Returns (clean rows with :data:`DOSAGE_COLUMNS` — ``week`` as a date, ``amount`` a
    float — and every problem found). A missing column is one problem with ``row`` −1.
    ``today`` (default: now) decides which weeks are in the future."""
    missing = [c for c in DOSAGE_COLUMNS if c not in frame.columns]
    if missing:
        return pd.DataFrame(columns=list(DOSAGE_COLUMNS)), [
            DosageProblem(-1, c, f"missing; expected columns {list(DOSAGE_COLUMNS)}")
            for c in missing]
    known = {str(a) for a in area_ids}
    today = pd.Timestamp(today or pd.Timestamp.now()).normalize()
    this_monday = today - pd.Timedelta(days=today.dayofweek)
    problems: list[DosageProblem] = []
    weeks = pd.to_datetime(frame["week"].astype(str), errors="coerce", format="mixed")
    amounts = pd.to_numeric(frame["amount"], errors="coerce")
    for row, (week, area, kind, amount, source) in enumerate(zip(
            weeks, frame["area_id"].astype(str), frame["kind"].astype(str), amounts,
            frame["source"].fillna("").astype(str), strict=True)):
        if pd.isna(week):
            problems.append(DosageProblem(row, "week", "not a date (YYYY-MM-DD)"))
        elif week.dayofweek != 0:
            problems.append(DosageProblem(row, "week", f"{week.date()} is not a Monday"))
        elif week > this_monday:
            problems.append(DosageProblem(row, "week", f"{week.date()} is in the future"))
        if area not in known:
            problems.append(DosageProblem(row, "area_id", f"{area[:32]!r} is not an area of "
                                                          "this city"))
        if kind not in DOSAGE_KINDS:
            problems.append(DosageProblem(row, "kind", f"{kind[:32]!r} is not one of "
                                                       f"{list(DOSAGE_KINDS)}"))
        if pd.isna(amount) or not np.isfinite(amount) or not 0 <= amount <= MAX_AMOUNT:
            problems.append(DosageProblem(row, "amount", f"must be a number from 0 to "
                                                         f"{MAX_AMOUNT:,.0f}"))
        if not _SOURCE.match(source):
            problems.append(DosageProblem(row, "source", "must be a short label without spaces "
                                                         "(letters, digits, _.:/@-; ≤ 64)"))
    clean = pd.DataFrame({"week": weeks.dt.date, "area_id": frame["area_id"].astype(str),
                          "kind": frame["kind"].astype(str), "amount": amounts.astype(float),
                          "source": frame["source"].fillna("").astype(str)})
    return clean, problems

"""Dosage: validated (every problem named by row and column), appended with history kept,
compared with the logged plan by group and week, and usable to pick treated areas."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from crimecast.cli import app
from crimecast.dosage import validate_dosage
from monitoring.dosage import current_dosage, planned_allocations, planned_vs_delivered

AREAS = ["a1", "a2", "a3"]
TODAY = pd.Timestamp("2025-03-12")  # a Wednesday


def test_every_invalid_value_is_listed_with_row_and_column() -> None:
    frame = pd.DataFrame({
        "week": ["2025-03-03", "2025-03-04", "2025-03-17", "soon", "2025-02-24"],
        "area_id": ["a1", "a2", "a3", "nowhere", "a1"],
        "kind": ["patrol_minutes", "outreach_contacts", "hugs", "patrol_minutes",
                 "programme_enrolments"],
        "amount": ["90", "-1", "3", "4", "nan"],
        "source": ["cad-export", "team-3", "team 3 John Smith", "x", "cad-export"]})
    clean, problems = validate_dosage(frame, AREAS, today=TODAY)
    found = {(p.row, p.column) for p in problems}
    assert found == {(1, "week"), (1, "amount"), (2, "week"), (2, "kind"), (2, "source"),
                     (3, "week"), (3, "area_id"), (4, "amount")}
    assert "is not a Monday" in str(next(p for p in problems if p.row == 1))
    assert str(next(p for p in problems if p.row == 2 and p.column == "week")).startswith(
        "row 3, column 'week': 2025-03-17 is in the future")
    assert clean.loc[0, "amount"] == 90.0
    _, missing = validate_dosage(frame.drop(columns=["source"]), AREAS, today=TODAY)
    assert [(p.row, p.column) for p in missing] == [(-1, "source")]


def _write(path: Path, rows: list[tuple[str, str, str, float, str]]) -> Path:
    pd.DataFrame(rows, columns=["week", "area_id", "kind", "amount", "source"]).to_csv(
        path, index=False)
    return path


def test_import_appends_keeps_history_and_monitoring_reads_the_current_values(
        synthetic_project: Path) -> None:
    from crimecast.contracts import AreaGraph

    ids = list(AreaGraph.load().area_ids)
    runner = CliRunner()
    first = _write(synthetic_project / "dosage.csv", [
        ("2024-01-01", ids[0], "patrol_minutes", 120, "cad-export"),
        ("2024-01-01", ids[1], "patrol_minutes", 30, "cad-export"),
        ("2024-01-08", ids[0], "outreach_contacts", 4, "team-3")])
    result = runner.invoke(app, ["dosage", "import", str(first)])
    assert result.exit_code == 0, result.output
    assert "recorded 3 dosage row(s)" in result.output and "replace" not in result.output

    correction = _write(synthetic_project / "fix.csv", [
        ("2024-01-01", ids[0], "patrol_minutes", 150, "cad-export"),
        ("2024-01-01", ids[0], "patrol_minutes", 20, "gps-tracker")])
    result = runner.invoke(app, ["dosage", "import", str(correction)])
    assert result.exit_code == 0, result.output
    assert "recorded 2 dosage row(s)" in result.output
    assert "1 replace earlier values (kept as history)" in result.output

    import sqlite3

    with sqlite3.connect(synthetic_project / "state" / "predlog.db") as db:
        history = pd.read_sql("SELECT * FROM dosage_history ORDER BY seq", db)
    assert len(history) == 5 and history["key_name"].str.startswith("cli:").all()
    assert sorted(history.loc[history["area_id"] == ids[0], "amount"]) == [4, 20, 120, 150]
    corrected = history[(history["area_id"] == ids[0]) & (history["amount"] == 150)].iloc[0]
    assert corrected["previous_amount"] == 120  # the old value stays, next to the new one

    current = current_dosage("sqlite:///state/predlog.db")
    patrol = current[(current["kind"] == "patrol_minutes")].set_index("area_id")["amount"]
    assert patrol[ids[0]] == 170  # 150 (the correction) + 20 from the second source
    assert patrol[ids[1]] == 30


def test_invalid_file_records_nothing_and_names_the_rows(synthetic_project: Path) -> None:
    bad = _write(synthetic_project / "bad.csv", [
        ("2024-01-02", "nowhere", "patrol_minutes", 5, "cad-export")])
    done = subprocess.run([sys.executable, "-m", "crimecast", "dosage", "import", str(bad)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "row 1, column 'week': 2024-01-02 is not a Monday" in done.stderr
    assert "row 1, column 'area_id'" in done.stderr
    assert "2 invalid value(s); nothing recorded" in done.stderr
    assert current_dosage("sqlite:///state/predlog.db").empty


def test_planned_against_delivered_by_group_and_week(synthetic_project: Path) -> None:
    from crimecast.contracts import AreaGraph
    from serving.predlog import PredictionLog, RequestRecord

    graph = AreaGraph.load()
    groups = graph.areas["group"]
    first_group = groups.iloc[0]
    a, b = graph.area_ids[0], next(x for x in graph.area_ids if groups[x] != first_group)
    log = PredictionLog(f"sqlite:///{synthetic_project / 'state' / 'predlog.db'}")
    summary = {"kind": "patrol", "units": {a: 3, b: 1}, "cap_ratio": 1.25,
               "target_week": "2024-01-08"}
    log.submit(RequestRecord("r1", datetime.now(UTC), "dispatch", "allocate", 200, "1",
                             "{}", json.dumps(summary), 3.0)).result(10)
    log.close()
    _write(synthetic_project / "d.csv", [("2024-01-08", a, "patrol_minutes", 100, "cad"),
                                         ("2024-01-08", b, "patrol_minutes", 100, "cad")])
    assert CliRunner().invoke(app, ["dosage", "import", "d.csv"]).exit_code == 0

    planned = planned_allocations("sqlite:///state/predlog.db")
    assert planned.set_index("area_id")["units"].to_dict() == {a: 3, b: 1}
    table = planned_vs_delivered(planned, current_dosage("sqlite:///state/predlog.db"), groups)
    row = table.set_index("group").loc[first_group]
    assert row["planned_share"] == 0.75 and row["delivered_share"] == 0.5
    assert abs(row["delivered_vs_planned"] - 2 / 3) < 1e-9
    result = CliRunner().invoke(app, ["dosage", "summary"])
    assert result.exit_code == 0, result.output
    assert (synthetic_project / "state" / "monitoring" / "dosage_by_group.csv").exists()


def test_impact_picks_treated_areas_from_dosage(synthetic_project: Path) -> None:
    from crimecast.contracts import AreaGraph, Panel

    ids = list(AreaGraph.load().area_ids)[:6]
    weeks = Panel.load().weeks[-16:-4]
    rows = [(str(w.date()), area, "patrol_minutes", 90, "cad") for w in weeks for area in ids]
    rows.append((str(weeks[0].date()), list(AreaGraph.load().area_ids)[10], "patrol_minutes",
                 30, "cad"))  # below the 60 a week threshold
    _write(synthetic_project / "d.csv", rows)
    assert CliRunner().invoke(app, ["dosage", "import", "d.csv"]).exit_code == 0
    result = CliRunner().invoke(app, ["impact"])
    assert result.exit_code == 0, result.output
    payload = json.loads((synthetic_project / "state/monitoring/impact.json").read_text())
    assert payload["design"]["treated_areas"] == 6
    assert payload["design"]["start_week"] == str(weeks[0].date())
    assert payload["design"]["weeks"] == 12

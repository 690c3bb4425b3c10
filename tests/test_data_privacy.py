"""Privacy scan: nothing leaks from ingest's outputs; planted leaks are found."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from crimecast.data.areas import run_areas
from crimecast.data.ingest import run_ingest
from crimecast.data.privacy import scan_for_leaks, scan_text
from crimecast.data.settings import DataSettings
from crimecast.data.sources.philadelphia import PhiladelphiaSource

SLICE = Path(__file__).parent / "fixtures" / "data" / "philly_slice"


@pytest.fixture
def built(tmp_project: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, set[str]]:
    monkeypatch.setenv("CRIMECAST_DATA__SOURCE", "philadelphia")
    monkeypatch.setenv("CRIMECAST_DATA__PHILADELPHIA__SNAPSHOT_DIR", str(SLICE))
    settings = DataSettings.load()
    PhiladelphiaSource(settings).fetch(settings.raw_path())
    run_ingest(now=pd.Timestamp("2025-01-01", tz="America/New_York"))
    run_areas()
    keys = {str(k) for k in pq.read_table(SLICE / "incidents.parquet").column("objectid").to_pylist()}
    return tmp_project / "artifacts", keys


def test_ingest_outputs_hold_no_addresses_keys_or_secrets(built) -> None:
    artifacts, keys = built
    assert {p.name for p in artifacts.iterdir()} >= {"incidents.parquet", "quarantine.csv.gz",
                                                     "ingest_report.json", "areas.parquet"}
    assert scan_for_leaks([artifacts], source_keys=keys) == []


def test_planted_leaks_are_found_in_every_format(built, tmp_path: Path) -> None:
    artifacts, keys = built
    key = min(keys)
    report = tmp_path / "report"
    report.mkdir()
    (report / "page.html").write_text(
        "<p>Hotspot near <b>400 BLOCK W INDIANA AV</b></p><p>token: ghp_"
        + "a" * 36 + "</p>")
    incidents = pd.read_parquet(artifacts / "incidents.parquet")
    incidents.loc[0, "area_id"] = "1234 Market St"
    incidents["objectid"] = int(key)
    incidents.to_parquet(report / "leaky.parquet")
    (report / "notes.json").write_text(json.dumps({"api_key": "sk_live_abcdefgh12345678",
                                                   "case": f"{key}.00000000"}))

    findings = scan_for_leaks([report], source_keys=keys)
    found = {(f.path.name, f.kind) for f in findings}
    assert found == {("page.html", "address"), ("page.html", "secret"),
                     ("leaky.parquet", "address"), ("leaky.parquet", "source_key"),
                     ("notes.json", "secret"), ("notes.json", "source_key")}
    assert all("INDIANA" not in str(f) and key not in str(f) for f in findings)  # masked


@pytest.mark.parametrize("text", ["Weekly counts for 408 tracts over 52 weeks",
                                  "PAI at 5 % of area is 3.1", "week 2025-03-10 was an outage"])
def test_ordinary_report_text_is_not_flagged(text: str) -> None:
    assert scan_text(text, {"35970271"}) == []

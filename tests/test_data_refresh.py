"""`crimecast data refresh` against a local replay of the city's SQL API (never the internet),
and the other data commands on the 6-tract Philadelphia fixture."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest
from typer.testing import CliRunner

from crimecast.cli import app
from crimecast.data.privacy import scan_for_leaks

FIXTURES = Path(__file__).parent / "fixtures" / "data"
RESPONSE = (FIXTURES / "carto_refresh.csv").read_bytes()


class _Replay(BaseHTTPRequestHandler):
    """Answers GET /api/v2/sql with the recorded CSV, remembering each query."""

    queries: ClassVar[list[dict[str, list[str]]]] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path != "/api/v2/sql":
            self.send_error(404)
            return
        type(self).queries.append(parse_qs(url.query))
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(RESPONSE)))
        self.end_headers()
        self.wfile.write(RESPONSE)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def replay_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Replay)
    _Replay.queries = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v2/sql"
    server.shutdown()
    server.server_close()


@pytest.fixture
def fetched(tmp_project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CRIMECAST_DATA__SOURCE", "philadelphia")
    monkeypatch.setenv("CRIMECAST_DATA__PHILADELPHIA__SNAPSHOT_DIR", str(FIXTURES / "philly_slice"))
    result = CliRunner().invoke(app, ["data", "fetch"])
    assert result.exit_code == 0, result.output
    return tmp_project


def test_refresh_appends_new_incidents_deduplicated_without_addresses(
        fetched: Path, replay_api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRIMECAST_DATA__PHILADELPHIA__API_URL", replay_api)
    raw_file = fetched / "data" / "incidents.parquet"
    before = pd.read_parquet(raw_file)
    runner = CliRunner()

    result = runner.invoke(app, ["data", "refresh", "--since", "2024-07-01"])
    assert result.exit_code == 0, result.output
    sent = _Replay.queries[0]
    assert sent["format"] == ["csv"]
    assert "FROM incidents_part1_part2 WHERE dispatch_date >= '2024-07-01'" in sent["q"][0]
    assert "location_block" not in sent["q"][0]

    api = pd.read_csv(FIXTURES / "carto_refresh.csv", dtype={"objectid": "Int64"})
    new_ids = set(api["objectid"].dropna()) - set(before["objectid"])
    after = pd.read_parquet(raw_file)
    assert len(after) == len(before) + len(new_ids)
    assert after["objectid"].is_unique
    assert list(after.columns) == list(before.columns)  # no address or case number column
    revised = api.dropna(subset=["objectid"])
    revised = revised[revised["objectid"].isin(before["objectid"])].iloc[0]
    assert after.set_index("objectid").loc[int(revised["objectid"]), "ucr_general"] == 2600
    assert "1 without a record id" in result.output
    assert not [f for f in scan_for_leaks([fetched / "data"]) if f.kind == "address"]

    again = runner.invoke(app, ["data", "refresh", "--since", "2024-07-01"])
    assert again.exit_code == 0 and "0 new" in again.output
    assert len(pd.read_parquet(raw_file)) == len(after)


def test_refresh_refuses_a_bad_date(fetched: Path) -> None:
    result = CliRunner().invoke(app, ["data", "refresh", "--since", "last week"])
    assert result.exit_code != 0 and "YYYY-MM-DD" in result.output


def test_validate_writes_nothing_and_summary_reports_the_built_data(fetched: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["data", "validate"])
    assert result.exit_code == 0, result.output
    assert "missing_coordinates" in result.output and "nothing written" in result.output
    assert not (fetched / "artifacts").exists()

    from crimecast.data.areas import run_areas
    from crimecast.data.ingest import run_ingest

    report = run_ingest().report
    run_areas()
    result = runner.invoke(app, ["data", "summary"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "2024" in result.output and f"{report['rows_valid']:,}" in result.output
    assert "areas (tracts of Philadelphia)" in result.output and "graph.npz not built" in result.output
    saved = json.loads((fetched / "artifacts" / "ingest_report.json").read_text())
    assert saved["rows_valid"] == report["rows_valid"]


def test_api_rows_are_normalised_to_the_snapshot_columns() -> None:
    from crimecast.data.sources.philadelphia import INCIDENT_COLUMNS, normalise_api_csv

    text = ("objectid,dispatch_date,dispatch_time,ucr_general,point_x,point_y,location_block\n"
            "1,2024-07-01T00:00:00Z,9:05,600,-75.1,39.9,100 BLOCK E SAMPLE ST\n"
            "2,2024-07-02,13:05:07,abc,,39.9,\n"
            "x,2024-07-02,13:05:07,600,-75.1,39.9,\n")
    frame, rejected = normalise_api_csv(text)
    assert rejected == 1 and list(frame.columns) == list(INCIDENT_COLUMNS)
    assert frame["dispatch_date"].tolist() == ["2024-07-01", "2024-07-02"]
    assert frame["dispatch_time"].tolist() == ["09:05:00", "13:05:07"]
    assert frame["ucr_general"].tolist() == [600, -1]  # -1: quarantined later as unknown code

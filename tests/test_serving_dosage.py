"""`/dosage` on a live BentoML server: it needs the dosage scope, keeps every write as
history (the current value per week, area, kind and source, and the one it replaced),
and answers invalid rows with 422 naming each field."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator

import pytest

from serving.auth import add_key
from tests.test_serving_api import (
    ADMIN_KEY,
    FEEDER_KEY,
    Project,
    Server,
    served_project,
    start_server,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(synthetic_city, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return served_project(synthetic_city, tmp_path_factory, "serving_dosage")


@pytest.fixture(scope="module")
def dosage_key(project: Project) -> str:
    return add_key(project.home / "state" / "api_keys.json", "patrol-app", scopes=["dosage"])


@pytest.fixture(scope="module")
def server(project: Project, dosage_key: str) -> Iterator[Server]:
    running = start_server(project.home, "server")
    yield running
    running.kill()


def _monday(weeks_ago: int) -> str:
    today = dt.date.today()
    return str(today - dt.timedelta(days=today.weekday() + 7 * weeks_ago))


def test_dosage_needs_the_dosage_scope(server: Server, project: Project,
                                       dosage_key: str) -> None:
    rows = [{"week": _monday(1), "area_id": project.area_ids[0], "kind": "patrol_minutes",
             "amount": 45, "source": "cad-export"}]
    for key in (None, FEEDER_KEY):
        refused = server.post("/dosage", {"dosage": rows}, **({"key": key} if key else {}))
        assert refused.status_code == 403 and refused.json()["scope"] == "dosage"
    answered = server.post("/dosage", {"dosage": rows}, key=dosage_key)
    assert answered.status_code == 200, answered.text
    assert answered.json() == {"written": 1, "superseded": 0, "weeks": [_monday(1)]}


def test_every_dosage_write_is_kept_and_the_latest_is_current(server: Server,
                                                              project: Project,
                                                              dosage_key: str) -> None:
    area = project.area_ids[2]
    rows = [{"week": _monday(2), "area_id": area, "kind": "outreach_contacts", "amount": 3,
             "source": "team-3"},
            {"week": _monday(2), "area_id": area, "kind": "programme_enrolments", "amount": 1,
             "source": "team-3"}]
    assert server.post("/dosage", {"dosage": rows}, key=dosage_key).json()["superseded"] == 0
    rows[0]["amount"] = 5
    second = server.post("/dosage", {"dosage": rows[:1]}, key=ADMIN_KEY)
    assert second.status_code == 200 and second.json()["superseded"] == 1
    with sqlite3.connect(project.home / "state" / "predlog.db") as db:
        current = db.execute("SELECT kind, amount, key_name FROM dosage WHERE area_id = ? "
                             "ORDER BY kind", (area,)).fetchall()
        history = db.execute("SELECT amount, previous_amount, key_name, request_id "
                             "FROM dosage_history WHERE area_id = ? AND kind = "
                             "'outreach_contacts' ORDER BY seq", (area,)).fetchall()
        logged = db.execute("SELECT response_summary FROM predictions WHERE request_id = ?",
                            (second.headers["x-request-id"],)).fetchone()
    assert current == [("outreach_contacts", 5.0, "ops"), ("programme_enrolments", 1.0,
                                                            "patrol-app")]
    assert [h[:3] for h in history] == [(3.0, None, "patrol-app"), (5.0, 3.0, "ops")]
    assert history[1][3] == second.headers["x-request-id"]
    assert '"superseded": 1' in logged[0] or '"superseded":1' in logged[0]


@pytest.mark.parametrize(("row", "field"), [
    ({"week": "2020-01-07"}, "dosage[0].week"),             # a Tuesday
    ({"week": _monday(-2)}, "dosage[0].week"),               # in the future
    ({"area_id": "no-such-area"}, "dosage[0].area_id"),
    ({"kind": "drone_flights"}, "dosage.0.kind"),
    ({"amount": -3}, "dosage.0.amount"),
    ({"source": "John Smith"}, "dosage.0.source"),           # free text, not a label
])
def test_invalid_dosage_gets_422_naming_the_field(server: Server, project: Project,
                                                  dosage_key: str, row: dict,
                                                  field: str) -> None:
    base = {"week": _monday(1), "area_id": project.area_ids[0], "kind": "patrol_minutes",
            "amount": 10, "source": "cad-export"}
    response = server.post("/dosage", {"dosage": [{**base, **row}]}, key=dosage_key)
    assert response.status_code == 422, response.text
    assert field in {p["field"] for p in response.json()["problems"]}
    with sqlite3.connect(project.home / "state" / "predlog.db") as db:
        stored = db.execute("SELECT count(*) FROM dosage_history WHERE amount = ? OR "
                            "area_id = 'no-such-area'", (-3,)).fetchone()[0]
    assert stored == 0

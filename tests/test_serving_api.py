"""Acceptance tests of the prediction API: a real BentoML server in a subprocess on a free
loopback port, a temporary project home with the synthetic city, and a real MLflow
registry (SQLite) holding a historical-average @champion registered with
crimecast.lifecycle.tracking / crimecast.lifecycle.registry."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import psutil
import pytest

from crimecast.localserver import free_port, wait_until_ready
from serving.auth import hash_key

REPO = Path(__file__).resolve().parents[1]
USER_KEY = "user-" + os.urandom(8).hex()
ADMIN_KEY = "admin-" + os.urandom(8).hex()
FEEDER_KEY = "feeder-" + os.urandom(8).hex()  # scope "outcomes" only

pytestmark = pytest.mark.slow


def _no_backtest(*_: object) -> tuple[pd.DataFrame, dict]:
    # Serving does not depend on backtest scores; skipping the refits saves ~15 s per model.
    return pd.DataFrame(columns=["area_id", "origin", "horizon", "mean", "count"]), {
        "overall": {"mae": 1.0}}


def _register(home: Path, model: str, panel: object, graph: object, alias: str | None) -> str:
    """Train + register ``model`` with crimecast.lifecycle.tracking; optionally set an alias."""
    from crimecast.lifecycle.registry import set_alias
    from crimecast.lifecycle.tracking import train_and_register

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRIMECAST_HOME", str(home))
        mp.setenv("CRIMECAST_TRACKING__LOG_MAP", "false")
        mp.chdir(home)
        result = train_and_register(model, panel, graph, backtest=_no_backtest)
        if alias:
            set_alias(alias, result.version, reason="serving test")
    return result.version


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


@dataclass
class Server:
    home: Path
    url: str
    proc: subprocess.Popen

    def post(self, path: str, payload: object = None, key: str | None = USER_KEY,
             headers: dict[str, str] | None = None, **kwargs: object) -> httpx.Response:
        headers = {**(headers or {}), **({"X-API-Key": key} if key else {})}
        return httpx.post(self.url + path, json=payload, headers=headers, timeout=30, **kwargs)

    def kill(self, sig: int = signal.SIGTERM) -> None:
        """Signal the server and its workers (BentoML starts each worker in its own
        session, so a process-group signal alone would orphan them)."""
        if self.proc.poll() is not None:
            return
        family = [self.proc.pid, *(c.pid for c in psutil.Process(self.proc.pid).children(True))]
        for pid in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            for pid in family:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait()
        _, alive = psutil.wait_procs([p for p in map(_process, family) if p], timeout=10)
        for process in alive:
            process.kill()


def start_server(home: Path, log_name: str, poll_seconds: float = 0,
                 **settings: str) -> Server:
    """A server on a free port; ``settings`` are extra CRIMECAST_SERVING__<KEY> values."""
    port = free_port()
    env = {**os.environ, "CRIMECAST_HOME": str(home),
           "CRIMECAST_API_KEYS": f"tester:{hash_key(USER_KEY)},ops:{hash_key(ADMIN_KEY)}:admin,"
                                 f"feeder:{hash_key(FEEDER_KEY)}:outcomes",
           "CRIMECAST_SERVING__ALIAS_POLL_SECONDS": str(poll_seconds),
           "CRIMECAST_SERVING__LIMITS__MAX_BODY_BYTES": "20000",
           "CRIMECAST_SERVING__LIMITS__MAX_OUTCOMES": "150",
           **{f"CRIMECAST_SERVING__{k.upper()}": v for k, v in settings.items()}}
    log = open(home / f"{log_name}.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "serving.service:CrimecastService",
         "--host", "127.0.0.1", "--port", str(port), "--working-dir", str(REPO)],
        cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(home, f"http://127.0.0.1:{port}", proc)
    try:
        wait_until_ready(server.url + "/readyz", proc, home / f"{log_name}.log", "server")
    except TimeoutError:
        server.kill(signal.SIGKILL)
        raise
    return server


@dataclass
class Project:
    home: Path
    champion: str
    area_ids: list[str]
    panel: object
    graph: object


def served_project(synthetic_city, tmp_path_factory: pytest.TempPathFactory,
                   name: str) -> Project:
    """A copy of the synthetic city with a historical-average @champion, ready to serve."""
    home = tmp_path_factory.mktemp(name) / "project"
    shutil.copytree(synthetic_city.home, home)
    version = _register(home, "historical_average", synthetic_city.panel, synthetic_city.graph,
                        "champion")
    return Project(home, version, [str(a) for a in synthetic_city.graph.area_ids],
                   synthetic_city.panel, synthetic_city.graph)


@pytest.fixture(scope="module")
def project(synthetic_city, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return served_project(synthetic_city, tmp_path_factory, "serving_api")


@pytest.fixture(scope="module")
def server(project: Project) -> Iterator[Server]:
    running = start_server(project.home, "server", poll_seconds=2)
    yield running
    running.kill()


def _predlog(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "state" / "predlog.db")


# ---------------------------------------------------------------------------- auth
def test_requests_without_a_valid_key_get_401_with_a_generic_body(server: Server) -> None:
    missing = server.post("/forecast", {"horizon": 1}, key=None)
    wrong = server.post("/forecast", {"horizon": 1}, key="guess")
    assert missing.status_code == wrong.status_code == 401
    assert missing.json() == wrong.json() == {"error": "unauthorized"}
    for probe in ("/healthz", "/livez", "/readyz"):
        assert httpx.get(server.url + probe).status_code == 200


def test_forecast_with_a_key_answers_from_the_champion_and_is_logged(server: Server,
                                                                    project: Project) -> None:
    ids = project.area_ids[:3]
    response = server.post("/forecast", {"horizon": 2, "category": "violent", "area_ids": ids})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == project.champion
    assert [r["area_id"] for r in body["forecasts"]] == ids
    for row in body["forecasts"]:
        assert row["lower_95"] <= row["lower_80"] <= row["mean"] <= row["upper_80"] <= row["upper_95"]
    request_id = response.headers["x-request-id"]
    with _predlog(project.home) as db:
        row = db.execute("SELECT key_name, endpoint, status, model_version FROM predictions "
                         "WHERE request_id = ?", (request_id,)).fetchone()
        served = db.execute("SELECT count(*) FROM served_forecasts WHERE model_version = ?",
                            (project.champion,)).fetchone()[0]
    assert row == ("tester", "forecast", 200, project.champion)
    assert served == len(project.area_ids) * 3 * 4


def test_reload_needs_an_admin_key(server: Server, project: Project) -> None:
    assert server.post("/reload", {}).status_code == 403
    answer = server.post("/reload", {}, key=ADMIN_KEY)
    assert answer.status_code == 200
    body = answer.json()
    assert {k: body[k] for k in ("previous_version", "version", "changed", "all_swapped")} == {
        "previous_version": project.champion, "version": project.champion, "changed": False,
        "all_swapped": True}
    assert [w["version"] for w in body["workers"]] == [project.champion]


def test_hotspots_allocate_model_and_outcomes_answer(server: Server, project: Project) -> None:
    geo = server.post("/hotspots", {"area_share": 0.1, "format": "geojson"}).json()
    assert geo["type"] == "FeatureCollection" and geo["features"]
    assert geo["features"][0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    allocation = server.post("/allocate", {"units": 25, "kind": "outreach"}).json()
    assert sum(a["units"] for a in allocation["allocations"]) == 25
    model = server.post("/model", {})
    assert model.json()["version"] == model.headers["x-model-version"] == project.champion
    assert model.json()["worker_id"]


# ---------------------------------------------------------------------- ground truth
def test_outcomes_need_the_outcomes_scope_and_every_write_is_kept(server: Server,
                                                                  project: Project) -> None:
    week = str(project.panel.last_week.date())
    area = project.area_ids[1]
    rows = [{"week": week, "area_id": area, "category": "violent", "count": 2}]
    refused = server.post("/outcomes", {"outcomes": rows})  # a read-only key
    assert refused.status_code == 403 and refused.json()["scope"] == "outcomes"
    assert server.post("/outcomes", {"outcomes": rows}, key=FEEDER_KEY).json()["written"] == 1
    rows[0]["count"] = 4
    second = server.post("/outcomes", {"outcomes": rows}, key=ADMIN_KEY)
    assert second.status_code == 200
    with _predlog(project.home) as db:
        latest = db.execute("SELECT count, key_name FROM outcomes WHERE area_id = ?",
                            (area,)).fetchall()
        history = db.execute("SELECT count, previous_count, key_name, request_id, recorded_at "
                             "FROM outcomes_history WHERE area_id = ? ORDER BY seq",
                             (area,)).fetchall()
    assert latest == [(4, "ops")]
    assert [h[:3] for h in history] == [(2, None, "feeder"), (4, 2, "ops")]
    assert history[1][3] == second.headers["x-request-id"] and history[1][4]


@pytest.mark.parametrize("week", ["0001-01-01", "current", "first-1"])
def test_outcomes_for_weeks_outside_the_data_or_unfinished_get_422(server: Server,
                                                                   project: Project,
                                                                   week: str) -> None:
    import datetime as dt

    today = dt.date.today()
    monday = today - dt.timedelta(days=today.weekday())
    first = project.panel.weeks[0].date()
    value = {"0001-01-01": dt.date(1, 1, 1), "current": monday,
             "first-1": first - dt.timedelta(days=7)}[week]
    rows = [{"week": str(value), "area_id": project.area_ids[0], "category": "violent",
             "count": 1}]
    response = server.post("/outcomes", {"outcomes": rows}, key=FEEDER_KEY)
    assert response.status_code == 422, response.text
    assert response.json()["problems"][0]["field"] == "outcomes[0].week"


# ------------------------------------------------------------------------- validation
@pytest.mark.parametrize(("path", "payload", "field"), [
    ("/forecast", {"horizon": 5}, "horizon"),
    ("/forecast", {"horizon": 1, "category": "arson"}, "category"),
    ("/forecast", {"area_ids": ["no-such-tract"]}, "area_ids"),
    ("/forecast", {"horizen": 1}, "horizen"),
    ("/forecast", {"horizon": "1"}, "horizon"),  # no string or boolean coercion
    ("/forecast", {"horizon": True}, "horizon"),
    ("/allocate", {"units": "5"}, "units"),
    ("/hotspots", {"k": 2.0}, "k"),
    ("/hotspots", {"k": 3, "area_share": 0.1}, "k"),
    ("/allocate", {"units": 0}, "units"),
    ("/allocate", {"units": 5, "kind": "drones"}, "kind"),
    ("/outcomes", {"outcomes": [{"week": "2099-01-05", "area_id": "x", "category": "violent",
                                 "count": 1}]}, "outcomes[0].week"),
    ("/outcomes", {"outcomes": [{"week": "2020-01-06", "area_id": "x", "category": "violent",
                                 "count": "1"}]}, "outcomes.0.count"),
])
def test_bad_input_gets_422_naming_the_field(server: Server, path: str, payload: dict,
                                             field: str) -> None:
    response = server.post(path, payload, key=ADMIN_KEY)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid request"
    assert field in {p["field"] for p in body["problems"]}


def test_size_limits_answer_413_and_422(server: Server, project: Project) -> None:
    big = server.post("/forecast", {"area_ids": ["x" * 100] * 400})  # > 20,000 bytes
    assert big.status_code == 413
    not_json = server.post("/forecast", content=b"{not json", key=USER_KEY)
    assert not_json.status_code == 422


def test_oversized_or_too_many_headers_get_431(server: Server) -> None:
    big = server.post("/forecast", {"horizon": 1}, headers={"X-Junk": "a" * 20_000})
    assert big.status_code == 431
    many = server.post("/forecast", {"horizon": 1},
                       headers={f"X-Junk-{i}": "1" for i in range(100)}, key=None)
    assert many.status_code == 431
    assert many.json()["limit_headers"] == 64
    fine = server.post("/forecast", {"horizon": 1}, headers={"X-Small": "a" * 2000})
    assert fine.status_code == 200


def test_a_10_mb_header_is_refused_while_it_is_still_arriving(server: Server) -> None:
    """The parser answers 431 and closes once the header block passes the bound, so the
    worker never buffers the rest (it used to accept 10 MB of headers)."""
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(b"POST /forecast HTTP/1.1\r\nHost: x\r\nX-Junk: ")
        sent = 0
        answer = b""
        try:
            while sent < 10_000_000:
                conn.sendall(b"a" * 65_536)
                sent += 65_536
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            answer = conn.recv(4096)
        except ConnectionResetError:
            pass
    assert sent < 4_000_000  # cut off long before 10 MB
    assert answer.startswith(b"HTTP/1.1 431") or answer == b""


def test_unknown_paths_are_logged_as_unknown_never_the_callers_path(server: Server,
                                                                    project: Project) -> None:
    response = server.post("/etc/passwd", {}, key=None)
    assert response.status_code == 401
    authenticated = server.post("/../../etc/shadow-" + "x" * 80, {})
    with _predlog(project.home) as db:
        rows = db.execute("SELECT endpoint FROM predictions WHERE request_id IN (?, ?)",
                          (response.headers["x-request-id"],
                           authenticated.headers["x-request-id"])).fetchall()
    assert rows == [("unknown",), ("unknown",)]


def test_a_keys_file_broken_while_running_keeps_the_last_good_keys(server: Server,
                                                                   project: Project) -> None:
    from serving.auth import add_key

    keys_file = project.home / "state" / "api_keys.json"
    key = add_key(keys_file, "file-app")
    time.sleep(1.5)  # the keyring looks at the file once a second
    assert server.post("/forecast", {"horizon": 1}, key=key).status_code == 200
    good = keys_file.read_text()
    keys_file.write_text(good[: len(good) // 2])  # a hand edit gone wrong
    try:
        time.sleep(1.5)
        for _ in range(5):
            started = time.monotonic()
            assert server.post("/forecast", {"horizon": 1}, key=key).status_code == 200
            assert server.post("/forecast", {"horizon": 1}, key="wrong").status_code == 401
            assert server.post("/forecast", {"horizon": 1}, key=None).status_code == 401
            assert time.monotonic() - started < 5  # never the old 60 s hang
        with _predlog(project.home) as db:
            alerts = db.execute("SELECT message FROM service_events "
                                "WHERE kind = 'keys_file_invalid'").fetchall()
        assert len(alerts) == 1 and "api_keys.json" in alerts[0][0]
    finally:
        keys_file.write_text(good)


def _schemathesis(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    st = Path(sys.executable).parent / "st"
    return subprocess.run(
        [str(st), "run", f"{server.url}/docs.json", "-H", f"X-API-Key: {ADMIN_KEY}",
         "--max-examples", "15", "--generation-deterministic", "--request-timeout", "20", *args],
        capture_output=True, text=True, timeout=180, check=False,
        cwd=server.home)  # schemathesis writes its .schemathesis/ cache into the cwd


def test_schemathesis_all_checks_pass(server: Server) -> None:
    """`schemathesis run -c all` against the live document. The one exception, on
    /outcomes and /dosage only: positive_data_acceptance, because a valid week depends on
    the data and the clock (a Monday of a finished week, not before the data's first
    week; for dosage a Monday not in the future), which JSON Schema cannot say; the API
    answers those with 422 naming the field."""
    everything = _schemathesis(server, "-c", "all", "--exclude-path", "/outcomes",
                               "--exclude-path", "/dosage")
    assert everything.returncode == 0, everything.stdout[-4000:]
    for path in ("/outcomes", "/dosage"):
        ledger = _schemathesis(server, "-c", "all", "--include-path", path,
                               "--exclude-checks", "positive_data_acceptance")
        assert ledger.returncode == 0, ledger.stdout[-4000:]


def test_openapi_document_tells_the_truth(server: Server, project: Project) -> None:
    doc = httpx.get(server.url + "/docs.json").json()
    assert doc["info"]["title"] == "crimecast prediction API"
    assert doc["info"]["version"] not in ("None", "") and "dev" not in doc["info"]["title"]
    assert doc["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "apiKey", "in": "header", "name": "X-API-Key"}
    forecast = doc["paths"]["/forecast"]["post"]
    assert forecast["security"] == [{"ApiKeyAuth": []}]
    assert {"200", "401", "403", "413", "422", "431", "503"} <= set(forecast["responses"])
    schemas = doc["components"]["schemas"]
    assert schemas["ForecastRequest"]["properties"]["area_ids"]["nullable"] is True
    assert schemas["HotspotsResponse"]["properties"]["hotspots"]["nullable"] is True
    assert schemas["GroupShare"]["properties"]["ratio"]["nullable"] is True
    categories = server.post("/model", {}).json()["categories"]
    assert schemas["ForecastRequest"]["properties"]["category"]["enum"] == [*categories, None]
    assert schemas["OutcomeRow"]["properties"]["category"]["enum"] == categories
    assert schemas["OutcomeRow"]["properties"]["area_id"]["example"] in project.area_ids
    assert schemas["OutcomesRequest"]["properties"]["outcomes"]["maxItems"] == 150
    # the documented error bodies are the ones answered
    from serving.schemas import ErrorBody, ForbiddenBody, HeadersTooLargeBody, InvalidRequestBody

    ErrorBody.model_validate(server.post("/forecast", {}, key=None).json())
    ForbiddenBody.model_validate(server.post("/reload", {}).json())
    InvalidRequestBody.model_validate(server.post("/forecast", {"horizon": 9}).json())
    HeadersTooLargeBody.model_validate(server.post(
        "/forecast", {}, headers={f"X-{i}": "1" for i in range(80)}).json())


def test_swagger_page_loads_no_third_party_script(server: Server) -> None:
    import re

    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert "googletagmanager" not in page.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("./static_content/") for s in sources)
    for source in sources:
        assert httpx.get(server.url + source[1:]).status_code == 200


# ----------------------------------------------------------------- load, kill, reload
async def _load(url: str, total: int, concurrency: int, on_progress: object = None,
                stop: object = None) -> list[tuple[int, str | None, str | None, float]]:
    """POST /forecast ``total`` times (or until ``stop()`` is true) over ``concurrency``
    connections. Returns (status, request id, model version, start time) per completed
    request; status -1 for a transport failure."""
    results: list[tuple[int, str | None, str | None, float]] = []
    next_index = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30,
                                 headers={"X-API-Key": USER_KEY}) as client:
        async def worker() -> None:
            nonlocal next_index
            while next_index < total and not (stop is not None and stop()):
                next_index += 1
                started = time.monotonic()
                try:
                    r = await client.post("/forecast", json={"horizon": 1, "category": "violent",
                                                             "area_ids": None})
                except httpx.HTTPError:
                    results.append((-1, None, None, started))
                    continue
                version = r.json()["model_version"] if r.status_code == 200 else None
                results.append((r.status_code, r.headers.get("x-request-id"), version, started))
                if on_progress is not None:
                    await on_progress(len(results))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def test_every_acknowledged_request_survives_sigkill(project: Project) -> None:
    victim = start_server(project.home, "victim")
    killed_at: list[int] = []

    async def kill_midway(done: int) -> None:
        if done >= 700 and not killed_at:
            killed_at.append(done)
            victim.kill(signal.SIGKILL)

    try:
        results = asyncio.run(_load(victim.url, 2000, 32, on_progress=kill_midway))
    finally:
        victim.kill(signal.SIGKILL)
    acknowledged = [rid for status, rid, _, _ in results if status == 200]
    assert killed_at and len(acknowledged) >= 700
    assert any(status == -1 for status, *_ in results)  # the kill really cut requests off
    with _predlog(project.home) as db:
        logged = {r[0] for r in db.execute("SELECT request_id FROM predictions")}
    missing = [rid for rid in acknowledged if rid not in logged]
    assert not missing, f"{len(missing)} acknowledged requests missing from the log"


def test_reload_under_load_switches_version_without_failed_requests(server: Server,
                                                                    project: Project) -> None:
    new_version = _register(project.home, "seasonal_naive", project.panel, project.graph, None)
    reloaded_at: list[float] = []

    def enough() -> bool:  # keep the load going until 2 s after the swap
        return bool(reloaded_at) and time.monotonic() > reloaded_at[0] + 2.0

    async def scenario() -> list[tuple[int, str | None, str | None, float]]:
        load = asyncio.create_task(_load(server.url, 20_000, 16, stop=enough))
        await asyncio.sleep(1.0)
        from crimecast.lifecycle.registry import set_alias

        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CRIMECAST_HOME", str(project.home))
            await asyncio.to_thread(set_alias, "champion", new_version, reason="serving test")
        async with httpx.AsyncClient(timeout=120) as client:
            answer = await client.post(server.url + "/reload", json={},
                                       headers={"X-API-Key": ADMIN_KEY})
        # The poller may have swapped first (then changed is false); either way the
        # version is the new one when reload returns.
        assert answer.status_code == 200 and answer.json()["version"] == new_version
        reloaded_at.append(time.monotonic())
        return await load

    results = asyncio.run(scenario())
    assert [s for s, *_ in results if s != 200] == []
    versions = {v for _, _, v, _ in results}
    assert versions == {project.champion, new_version}
    after = [v for _, _, v, started in results if started > reloaded_at[0]]
    assert after and set(after) == {new_version}
    assert server.post("/model", {}).json()["model_name"] == "seasonal_naive"


def test_alias_poller_follows_a_rollback_without_a_reload_call(server: Server,
                                                               project: Project) -> None:
    from crimecast.lifecycle.registry import set_alias

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRIMECAST_HOME", str(project.home))
        set_alias("champion", project.champion, reason="serving test rollback")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.post("/model", {}).json()["version"] == project.champion:
            break
        time.sleep(0.5)
    assert server.post("/forecast", {"horizon": 1}).json()["model_version"] == project.champion


# ------------------------------------------------------------------- several workers
def _live_workers(home: Path, db_name: str) -> list[tuple[str, str | None]]:
    with sqlite3.connect(home / "state" / db_name) as db:
        return db.execute("SELECT worker_id, version FROM serving_workers WHERE heartbeat_at > "
                          "datetime('now', '-5 seconds')").fetchall()


def test_reload_reaches_every_worker_and_revocation_too(project: Project) -> None:
    """workers: 2 — after /reload returns, 200 requests on fresh connections all get the
    new version; a revoked key is refused by both workers within the stated second."""
    from crimecast.lifecycle.registry import set_alias
    from serving.auth import add_key, revoke_key

    db_name = "predlog-two-workers.db"
    two = start_server(project.home, "two_workers", workers="2",
                       predlog__url=f"sqlite:///state/{db_name}")
    try:
        deadline = time.monotonic() + 60
        while len(_live_workers(project.home, db_name)) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(_live_workers(project.home, db_name)) == 2
        before = {two.post("/forecast", {"horizon": 1}).json()["model_version"]
                  for _ in range(20)}
        new_version = _register(project.home, "seasonal_naive", project.panel, project.graph,
                                None)
        assert new_version not in before
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CRIMECAST_HOME", str(project.home))
            set_alias("champion", new_version, reason="two-worker reload test")
        answer = two.post("/reload", {}, key=ADMIN_KEY)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["all_swapped"] is True and body["version"] == new_version
        assert len(body["workers"]) == 2
        assert {w["version"] for w in body["workers"]} == {new_version}
        answers = [two.post("/forecast", {"horizon": 1}) for _ in range(200)]  # fresh connections
        assert {(a.status_code, a.json()["model_version"]) for a in answers} == {
            (200, new_version)}
        workers = {two.post("/model", {}).json()["worker_id"] for _ in range(40)}
        assert len(workers) == 2  # both workers really answered

        keys_file = project.home / "state" / "api_keys.json"
        key = add_key(keys_file, "short-lived")
        time.sleep(1.5)
        assert {two.post("/forecast", {"horizon": 1}, key=key).status_code
                for _ in range(20)} == {200}
        revoke_key(keys_file, "short-lived")
        time.sleep(1.5)  # REFRESH_SECONDS = 1
        assert {two.post("/forecast", {"horizon": 1}, key=key).status_code
                for _ in range(40)} == {401}
    finally:
        two.kill()
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CRIMECAST_HOME", str(project.home))
            set_alias("champion", project.champion, reason="two-worker reload test done")

"""docs/data.md's worked example, end to end: a second city from three CSV files (the
csv_city fixture: text call types, UTC timestamps, own neighbourhood labels, centroids
without land area, fractional shares, 60 weeks) goes from `crimecast city init` to a
promoted @champion and a served forecast, running exactly the commands the docs list,
in a throwaway git + DVC project. The only edit is the category map, taken from the docs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from crimecast.localserver import free_port, stop_process_tree, wait_until_ready

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "data" / "csv_city"
DOCS = REPO / "docs" / "data.md"
pytestmark = pytest.mark.slow


def documented_commands() -> list[list[str]]:
    """The `crimecast ...` commands of the docs' city flow, continuation lines joined."""
    import shlex

    block = DOCS.read_text().split("<!-- city-flow:start -->")[1].split("<!-- city-flow:end -->")[0]
    text = block.split("```bash")[1].split("```")[0].replace("\\\n", " ")
    return [shlex.split(line) for line in text.splitlines() if line.strip()]


def documented_categories() -> str:
    text = DOCS.read_text()
    block = text.split("<!-- city-categories:start -->")[1].split("<!-- city-categories:end -->")[0]
    return block.split("```yaml")[1].split("```")[0].strip() + "\n"


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "CRIMECAST_HOME": str(home), "PYTHONPATH": str(home),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    env.pop("CRIMECAST_DEBUG", None)
    return env


def _run(args: list[str], home: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=home, env=_env(home), capture_output=True, text=True,
                            check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{args} failed ({result.returncode}):\n{output[-4000:]}"
    assert "Traceback" not in output, output[-4000:]
    return result


@pytest.fixture(scope="module")
def city_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("city_flow") / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("crimecast", "training", "serving", "monitoring", "configs"):
        shutil.copytree(REPO / name, home / name, ignore=ignore)
    for name in ("dvc.yaml", ".dvcignore", ".dvc/config", ".dvc/.gitignore", "bentofile.yaml"):
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, home / name)
    shutil.copytree(FIXTURE, home / "city")
    (home / ".gitignore").write_text("/artifacts/\n/data/\n/dvc-storage/\n/state/\n/reports/\n")
    git = ["git", "-c", "user.email=test@example.org", "-c", "user.name=test"]
    _run(["git", "init", "-q"], home)
    _run([*git, "add", "-A"], home)
    _run([*git, "commit", "-qm", "project"], home)
    return home


def test_city_from_csv_runs_from_city_init_to_a_served_forecast(city_home: Path) -> None:
    commands = documented_commands()
    assert [c[:3] for c in commands][:4] == [["crimecast", "city", "init"],
                                              ["crimecast", "data", "fetch"],
                                              ["crimecast", "data", "validate"],
                                              ["crimecast", "pipeline"]]
    outputs: dict[str, str] = {}
    key = ""
    for command in commands:
        name = " ".join(command[1:3])
        if command[1] == "serve":
            serve(city_home, command, key)
            continue
        result = _run([sys.executable, "-m", "crimecast", *command[1:]], city_home)
        outputs[name] = result.stdout + result.stderr
        if command[1] == "city":  # the one hand edit: the category map of the docs
            config = city_home / "configs" / "data.yaml"
            text = config.read_text()
            start, end = text.index("\ncategories:") + 1, text.index("\ncsv:")
            config.write_text(text[:start] + documented_categories() + text[end:])
        if command[1:3] == ["keys", "add"]:
            key = result.stdout.strip().splitlines()[-1]

    proposal = (city_home / "configs" / "data.yaml").read_text()
    for guess in ("timezone: America/Denver", "timestamps: utc", "share_scale: fraction",
                  'unit_label: "neighbourhood"', 'area_id: "nbhd"'):
        assert guess in proposal, guess
    assert "14 records of 'call_type' hold free text" in outputs["city init"]
    assert "unknown_area" in outputs["data validate"] and "Unincorporated" in outputs["data validate"]
    pipeline = outputs["pipeline"]
    assert "30 neighbourhoods of Denver" in pipeline
    assert "category 'weapons' has no incidents" in pipeline
    promotion = json.loads((city_home / "artifacts" / "promotion.json").read_text())
    assert promotion["champion_after"], promotion
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{city_home / 'state' / 'mlflow.db'}")
    assert client.get_model_version_by_alias("crimecast", "champion").version

    report = (city_home / "reports" / "index.html").read_text()
    assert "Denver" in report and "neighbourhood" in report
    assert "census tract" not in report.lower()


def serve(home: Path, command: list[str], key: str) -> None:
    """`crimecast serve` on a free port (the docs say 3000); forecast and model card."""
    assert key, "`crimecast keys add` printed no key"
    port = free_port()
    args = [a if a != "3000" else str(port) for a in command[1:]]
    log_path = home / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "crimecast", *args], cwd=home,
                                   env=_env(home), stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url + "/readyz", process, log_path, "crimecast serve")
        headers = {"X-API-Key": key}
        forecast = httpx.post(url + "/forecast", headers=headers, timeout=30,
                              json={"horizon": 1, "category": "traffic"})
        assert forecast.status_code == 200, forecast.text
        rows = forecast.json()["forecasts"]
        assert len(rows) == 30 and {r["category"] for r in rows} == {"traffic"}
        card = httpx.post(url + "/model", headers=headers, timeout=30, json={})
        assert card.status_code == 200, card.text
        body = card.json()
        assert body["city"]["name"] == "Denver"
        assert body["city"]["unit_label"] == "neighbourhood"
        assert sorted(body["categories"]) == ["disturbance", "suspicious", "traffic"]
    finally:
        stop_process_tree(process)
    assert "Traceback" not in log_path.read_text()

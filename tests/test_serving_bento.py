"""`bentoml build` turns the repository into a Bento of the prediction service (code and
configs, no model, no state). `bentoml containerize` needs Docker, which CI does not have:
it stays documented in docs/serving.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_bentoml_build_produces_a_bento_of_the_service(tmp_path: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "PYTHONPATH": str(REPO)}
    built = subprocess.run([sys.executable, "-m", "bentoml", "build", "--output", "tag", "."],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                           check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    tag = next(line for line in built.stdout.splitlines() if line.startswith("__tag__:"))
    name, version = tag.removeprefix("__tag__:").split(":")
    bento = tmp_path / "bentoml" / "bentos" / name / version
    manifest = yaml.safe_load((bento / "bento.yaml").read_text())
    assert manifest["service"] == "serving.service:CrimecastService"
    assert (bento / "src" / "serving" / "service.py").exists()
    assert (bento / "src" / "configs" / "serving.yaml").exists()
    assert not (bento / "src" / "state").exists()  # no keys, prediction log or registry
    assert not (bento / "src" / "tests").exists()
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "torch==2.13.0" in requirements and "bentoml==1.4.40" in requirements
    assert (bento / "env" / "docker" / "Dockerfile").exists()  # what containerize builds

"""What code a run used: the git commit and the pinned runtime packages."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path

from crimecast.paths import project_home

# Packages a served model needs, pinned to the versions it was trained with. Listing
# them avoids MLflow's requirement inference, which reloads the model in a subprocess.
_RUNTIME_PACKAGES = ("mlflow", "torch", "torch-geometric", "pandas", "numpy", "scipy",
                     "lightgbm", "pyarrow", "scikit-learn", "pydantic", "pyyaml")


def git_commit(directory: Path | None = None) -> str:
    """The HEAD commit of the repository holding ``directory`` (``"unknown"`` outside
    git), with ``-dirty`` appended when tracked files have uncommitted changes."""
    where = str(directory or project_home())
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=where, capture_output=True, text=True, timeout=10,
                               check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty.strip() else commit


def pip_requirements() -> list[str]:
    """Pinned requirements of the serving runtime (installed versions)."""
    pins = []
    for package in _RUNTIME_PACKAGES:
        try:
            pins.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins



"""Where the project's files live.

Everything is relative to the *project home*: the directory holding ``configs/``.
It is ``$CRIMECAST_HOME`` when set (tests point it at a temporary copy), else the
current directory or its nearest parent with a ``configs/`` folder.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_home() -> Path:
    env = os.environ.get("CRIMECAST_HOME")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "configs").is_dir():
            return candidate
    return here


def resolve(path: str | Path) -> Path:
    """An absolute path: relative paths are taken from the project home."""
    p = Path(path)
    return p if p.is_absolute() else project_home() / p


def state_sqlite_url(filename: str) -> str:
    """``sqlite:///<home>/state/<filename>`` (absolute; the folder is created): the
    embedded default store of MLflow, Optuna and the like."""
    db = project_home() / "state" / filename
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"

"""The data version: one short digest of the inputs a model was trained on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from crimecast.contracts import ARTIFACTS
from crimecast.paths import project_home


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_version(files: dict[str, Path] | None = None, lock_file: Path | None = None) -> dict[str, str]:
    """The data version of the model inputs.

    ``files`` maps a short name to a path (default: ``panel`` and ``graph`` under
    artifacts/). Each md5 comes from ``dvc.lock`` when a stage lists that output, else from
    hashing the file (``"missing"`` when absent). Returns ``{"<name>_md5": md5, ...,
    "version": <12-hex digest of all of them>}``.
    """
    files = files or {"panel": ARTIFACTS.panel, "graph": ARTIFACTS.graph}
    locked = _dvc_lock_md5s(lock_file or project_home() / "dvc.lock")
    out: dict[str, str] = {}
    for name, path in files.items():
        path = Path(path)
        key = _relative(path)
        if key in locked:
            out[f"{name}_md5"] = locked[key]
        elif path.exists():
            out[f"{name}_md5"] = file_md5(path)
        else:
            out[f"{name}_md5"] = "missing"
    combined = "\n".join(f"{k}={v}" for k, v in sorted(out.items()))
    out["version"] = hashlib.md5(combined.encode()).hexdigest()[:12]
    return out


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(project_home()))
    except ValueError:
        return str(path)


def _dvc_lock_md5s(lock_file: Path) -> dict[str, str]:
    """``{out path: md5}`` for every stage output listed in dvc.lock (empty if none)."""
    if not lock_file.exists():
        return {}
    lock = yaml.safe_load(lock_file.read_text()) or {}
    found: dict[str, str] = {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if "path" in out and "md5" in out:
                found[str(out["path"])] = str(out["md5"])
    return found



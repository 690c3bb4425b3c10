"""The data version: one short digest of everything a model's data came from.

It covers every raw input (each file of the raw snapshot folder ``data/``: incidents,
areas, demographics, an outline), the settings of ``configs/data.yaml`` that shape them
(all but the ``city`` wording), and the built artifacts the models read (panel, graph,
areas). Changing only the areas file therefore changes it, and with it the Optuna study
name (``crimecast-<model>-<data version>``), so a new city never reuses an old study.
"""

from __future__ import annotations

import hashlib
import json
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


def data_version(files: dict[str, Path] | None = None, lock_file: Path | None = None,
                 raw_dir: Path | None = None, data_config: dict | None = None) -> dict[str, str]:
    """The data version of the model inputs.

    ``files`` maps a short name to a built artifact (default: ``panel``, ``graph`` and
    ``areas`` under artifacts/); each md5 comes from ``dvc.lock`` when a stage lists that
    output, else from hashing the file (``"missing"`` when absent). ``raw_md5`` digests
    every file in ``raw_dir`` (default: ``DataSettings.raw_dir``) by name and content;
    ``data_config_md5`` the data settings that shape the data (``data_config``, default
    ``configs/data.yaml`` without ``city``); ``unit`` the spatial unit's tag (``tract``,
    ``h3r9``, ...). Returns ``{"<name>_md5": md5, ..., "unit": tag,
    "version": <12-hex digest of all of them>}``.
    """
    files = files or {"panel": ARTIFACTS.panel, "graph": ARTIFACTS.graph, "areas": ARTIFACTS.areas}
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
    from crimecast.data.settings import DataSettings

    if raw_dir is None or data_config is None:
        settings = DataSettings.load()
        raw_dir = raw_dir or settings.raw_path()
        data_config = (data_config if data_config is not None
                       else settings.model_dump(mode="json", exclude={"city"}))
    units = data_config.get("units") or {}
    out["unit"] = DataSettings.model_validate({"units": units}).units.tag
    out["raw_md5"] = folder_md5(raw_dir)
    out["data_config_md5"] = hashlib.md5(
        json.dumps(data_config, sort_keys=True, default=str).encode()).hexdigest()
    combined = "\n".join(f"{k}={v}" for k, v in sorted(out.items()))
    out["version"] = hashlib.md5(combined.encode()).hexdigest()[:12]
    return out


def folder_md5(folder: Path) -> str:
    """md5 over the relative path and md5 of every file under ``folder`` (``"missing"``
    when it does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return "missing"
    digest = hashlib.md5()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}={file_md5(path)}\n".encode())
    return digest.hexdigest()


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



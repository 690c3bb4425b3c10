"""Atomic file writes: write to a temporary file beside the target, then rename.

A failed or interrupted run therefore never leaves a half-written output, and the
previous version of the file stays intact until the new one is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it over the target on
    success, delete it on failure."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are meant to be read by others
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(target: str | Path, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def write_json(target: str | Path, payload: Any) -> Path:
    return write_text(target, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(target: str | Path, frame: pd.DataFrame) -> Path:
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(target)


def write_csv(target: str | Path, frame: pd.DataFrame) -> Path:
    """CSV, gzip-compressed when the name ends in ``.gz``."""
    with atomic_path(target) as tmp:
        compression = "gzip" if str(target).endswith(".gz") else None
        frame.to_csv(tmp, index=False, compression=compression)
    return Path(target)


def write_gzip(target: str | Path, data: bytes) -> Path:
    """gzip with ``mtime=0`` and no embedded file name: equal content gives equal bytes,
    so DVC hashes of gzipped outputs are stable across runs and machines."""
    import gzip

    with (atomic_path(target) as tmp, open(tmp, "wb") as raw,
          gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz):
        gz.write(data)
    return Path(target)

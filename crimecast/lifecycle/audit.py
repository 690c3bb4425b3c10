"""The audit log: every registration, promotion decision and alias change, append-only.

``state/audit.jsonl`` holds one JSON object per line, fsynced, never rewritten. MLflow
keeps no history of which version held an alias when, so :func:`alias_history` and
:func:`champion_lineage` (what rollback reads) come from here.

Record fields: ``at`` (ISO UTC), ``actor``, ``event`` (register | promote | rollback |
set_alias), ``decision`` (registered | promoted | refused | rolled_back | alias_set),
``reason``, ``challenger_version``, ``champion_version``, ``metrics`` (``{"challenger":
{...}, "reference": {...}}`` for promotions), ``checks`` (the gate's checks),
``alias_changes`` (``[{"alias", "from", "to"}]``), ``registered_model``.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crimecast.errors import CrimecastError
from crimecast.paths import resolve

CHAMPION = "champion"
CHALLENGER = "challenger"


class AuditError(CrimecastError, ValueError):
    """The audit log is unreadable (a line other than the last is not JSON)."""


def audit_path() -> Path:
    return resolve("state/audit.jsonl")


def default_actor() -> str:
    """Who acts: ``$USER``, else the login name, else ``"unknown"``."""
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def append_audit(record: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    """Append one decision to the audit log (append-only, locked, fsynced before return).

    ``at`` and ``actor`` are filled in when missing. Returns the record as written.
    """
    path = path or audit_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {**record, "at": record.get("at") or datetime.now(UTC).isoformat(timespec="microseconds"),
              "actor": record.get("actor") or default_actor()}
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return record


def read_audit(path: Path | None = None) -> list[dict[str, Any]]:
    """Every audit record, oldest first (a torn last line from a crash is skipped)."""
    path = path or audit_path()
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):  # only the last line may be torn
                raise AuditError(f"{path}: line {number} is not valid JSON") from None
    return records


def alias_history(path: Path | None = None) -> list[dict[str, Any]]:
    """Every alias change, oldest first: ``at, actor, event, alias, from, to, reason``."""
    changes = []
    for record in read_audit(path):
        for change in record.get("alias_changes") or []:
            changes.append({"at": record.get("at"), "actor": record.get("actor"),
                            "event": record.get("event"), "alias": change.get("alias"),
                            "from": change.get("from"), "to": change.get("to"),
                            "reason": record.get("reason")})
    return changes


def champion_lineage(path: Path | None = None) -> list[str]:
    """The stack of champion versions implied by the audit log: promotions push, rollbacks
    pop; the last element is the current champion."""
    stack: list[str] = []
    for change in alias_history(path):
        if change["alias"] != CHAMPION or change["to"] is None:
            continue
        if change["event"] == "rollback":
            while stack and stack[-1] != change["to"]:
                stack.pop()
            if not stack:
                stack.append(change["to"])
        else:
            stack.append(change["to"])
    return stack



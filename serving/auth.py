"""API keys: only their SHA-256 hashes are stored, each with a name and an admin flag.

Keys come from two places, merged:

- the keys file (``state/api_keys.json`` by default), written by
  ``crimecast keys add NAME [--admin]``: ``{"keys": [{"name", "sha256", "admin",
  "created_at"}]}``; it is re-read when it changes, so new keys work without a restart;
- the environment variable ``CRIMECAST_API_KEYS``: ``name:sha256hex[:admin],...``
  (for containers, where a secret store injects it).

A presented key is hashed and compared with every stored hash using
:func:`hmac.compare_digest`, without stopping at the first match, so neither timing nor
the error body tells a caller which keys exist.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from crimecast.io import write_json

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class ApiKeyError(ValueError):
    """A keys file or CRIMECAST_API_KEYS entry is malformed; the message says where."""


@dataclass(frozen=True)
class ApiKey:
    name: str
    sha256: str
    admin: bool = False


def hash_key(key: str) -> str:
    """Hex SHA-256 of a plaintext key (what gets stored)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_env_keys(value: str, source: str = "CRIMECAST_API_KEYS") -> list[ApiKey]:
    """Parse ``name:sha256hex[:admin],...``; raises :class:`ApiKeyError` naming the bad entry."""
    keys = []
    for position, entry in enumerate(e.strip() for e in value.split(",")):
        if not entry:
            continue
        parts = entry.split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "admin"):
            raise ApiKeyError(f"{source} entry {position + 1}: expected name:sha256hex[:admin]")
        name, digest = parts[0], parts[1].lower()
        if not _NAME.match(name):
            raise ApiKeyError(f"{source} entry {position + 1}: bad key name {name!r}")
        if not _HEX64.match(digest):
            raise ApiKeyError(f"{source} entry {position + 1} ({name}): the hash must be 64 hex "
                            "characters (SHA-256 of the key, never the key itself)")
        keys.append(ApiKey(name=name, sha256=digest, admin=len(parts) == 3))
    return keys


def read_keys_file(path: Path) -> list[ApiKey]:
    """Keys from a keys file (empty list when the file does not exist)."""
    if not path.exists():
        return []
    try:
        payload = json.loads(path.read_text())
        entries = payload["keys"]
        keys = [ApiKey(name=str(e["name"]), sha256=str(e["sha256"]).lower(),
                       admin=bool(e.get("admin", False))) for e in entries]
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiKeyError(f"{path}: expected {{\"keys\": [{{\"name\", \"sha256\", \"admin\"}}]}}"
                        f" ({exc})") from None
    for key in keys:
        if not _HEX64.match(key.sha256):
            raise ApiKeyError(f"{path}: key {key.name!r} has a malformed sha256")
    return keys


def add_key(path: Path, name: str, admin: bool = False) -> str:
    """Create a new random key named ``name``, store its hash in ``path`` (atomically) and
    return the plaintext key: the only time it is ever shown."""
    if not _NAME.match(name):
        raise ApiKeyError(f"key name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-'")
    existing = read_keys_file(path)
    if any(k.name == name for k in existing):
        raise ApiKeyError(f"{path}: a key named {name!r} already exists")
    key = "cc_" + secrets.token_urlsafe(32)
    entries = [{"name": k.name, "sha256": k.sha256, "admin": k.admin} for k in existing]
    entries.append({"name": name, "sha256": hash_key(key), "admin": admin,
                    "created_at": datetime.now(UTC).isoformat(timespec="seconds")})
    # Keep the created_at of earlier entries when the file had them.
    if path.exists():
        old = {e["name"]: e for e in json.loads(path.read_text()).get("keys", [])}
        for entry in entries:
            if "created_at" in old.get(entry["name"], {}):
                entry["created_at"] = old[entry["name"]]["created_at"]
    write_json(path, {"keys": entries})
    os.chmod(path, 0o600)
    return key


class KeyRing:
    """The accepted keys, refreshed from the keys file when it changes (checked at most
    once a second, so a request costs one ``stat`` at most)."""

    def __init__(self, file: Path, env_value: str | None = None) -> None:
        self.file = file
        self._env_keys = parse_env_keys(env_value) if env_value else []
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._checked = 0.0
        self._keys: tuple[ApiKey, ...] = ()
        self._refresh(force=True)

    @property
    def keys(self) -> tuple[ApiKey, ...]:
        return self._keys

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < 1.0:
            return
        with self._lock:
            self._checked = now
            try:
                mtime = self.file.stat().st_mtime_ns
            except FileNotFoundError:
                mtime = None
            if not force and mtime == self._mtime:
                return
            file_keys = read_keys_file(self.file) if mtime is not None else []
            self._mtime = mtime
            self._keys = tuple(file_keys + self._env_keys)

    def identify(self, presented: str | None) -> ApiKey | None:
        """The key matching ``presented`` (plaintext), or None."""
        self._refresh()
        if not presented:
            return None
        digest = hash_key(presented)
        match = None
        for key in self._keys:
            # No early exit: the time taken does not depend on which key matched.
            if hmac.compare_digest(key.sha256, digest):
                match = key
        return match

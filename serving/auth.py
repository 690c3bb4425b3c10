"""API keys: only their SHA-256 hashes are stored, each with a name and its scopes.

Scopes (what a key may call):

- ``read``: ``/forecast``, ``/hotspots``, ``/allocate``, ``/model``;
- ``outcomes``: ground-truth writes (``/outcomes``), which monitoring scores against;
- ``dosage``: delivered-intervention writes (``/dosage``), which impact evaluation reads;
- ``admin``: ``/reload``.

Keys come from two places, merged:

- the keys file (``state/api_keys.json`` by default), written only by
  ``crimecast keys add | revoke | rotate`` (atomic rewrite):
  ``{"keys": [{"name", "sha256", "scopes", "created_at", "revoked_at"?}]}``;
  it is re-read when it changes (checked at most once a second), so a new, rotated or
  revoked key takes effect in every worker within about a second;
- the environment variable ``CRIMECAST_API_KEYS``:
  ``name:sha256hex[:scope+scope...],...`` (for containers, where a secret store injects it).

Keys written before scopes existed carry ``"admin": true|false`` instead of ``scopes``
(and env entries ``name:hash`` / ``name:hash:admin``): a key without scopes is treated
as ``read``, and an old admin key as every scope (it could already do everything). So an old non-admin key can no longer write outcomes: give its user a key
with ``crimecast keys add NAME --scope read --scope outcomes``.

A presented key is hashed and compared with every stored hash using
:func:`hmac.compare_digest`, without stopping at the first match, so neither timing nor
the error body tells a caller which keys exist.

If the keys file becomes malformed while the service runs (a hand edit gone wrong), the
last good key set stays in force, the error is logged once per bad version of the file
and handed to ``on_invalid`` (the service records it as an alert), and requests are
accepted or refused exactly as before. At startup a malformed file is an error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crimecast.errors import CrimecastError
from crimecast.io import write_json

log = logging.getLogger("crimecast.serving.auth")

SCOPES = ("read", "outcomes", "dosage", "admin")
#: Scopes of a legacy key without a ``scopes`` field, by its old ``admin`` flag.
LEGACY_SCOPES = {False: frozenset({"read"}), True: frozenset(SCOPES)}
#: How often a worker looks at the keys file (seconds): the bound on how long a
#: revocation or rotation takes to reach every worker.
REFRESH_SECONDS = 1.0

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_FIX = ("rewrite it with `crimecast keys list` / `keys add` / `keys revoke`, or restore the "
        "last good copy; never edit it by hand")


class ApiKeyError(CrimecastError, ValueError):
    """A keys file or CRIMECAST_API_KEYS entry is malformed; the message says where."""


@dataclass(frozen=True)
class ApiKey:
    name: str
    sha256: str
    scopes: frozenset[str] = frozenset({"read"})

    @property
    def admin(self) -> bool:
        return "admin" in self.scopes

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


def hash_key(key: str) -> str:
    """Hex SHA-256 of a plaintext key (what gets stored)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _check_scopes(scopes: Iterable[str], where: str, file: Path | str | None) -> frozenset[str]:
    found = frozenset(scopes)
    unknown = sorted(found - set(SCOPES))
    if unknown or not found:
        raise ApiKeyError(f"{where}: scopes must be a non-empty subset of {list(SCOPES)}"
                          + (f", got {unknown}" if unknown else ""), file=file, key="scopes",
                          hint=_FIX if file else None)
    return found


def parse_env_keys(value: str, source: str = "CRIMECAST_API_KEYS") -> list[ApiKey]:
    """Parse ``name:sha256hex[:scope+scope...],...`` (``:admin`` alone is the legacy admin
    flag); raises :class:`ApiKeyError` naming the bad entry, never echoing a key."""
    keys = []
    for position, entry in enumerate(e.strip() for e in value.split(",")):
        if not entry:
            continue
        parts = entry.split(":")
        where = f"{source} entry {position + 1}"
        if len(parts) not in (2, 3):
            raise ApiKeyError(f"{where}: expected name:sha256hex[:scope+scope]",
                              hint=f"scopes are {'+'.join(SCOPES)}")
        name, digest = parts[0], parts[1].lower()
        if not _NAME.match(name):
            raise ApiKeyError(f"{where}: bad key name {name!r}")
        if not _HEX64.match(digest):
            raise ApiKeyError(f"{where} ({name}): the hash must be 64 hex characters "
                              "(SHA-256 of the key, never the key itself)")
        if len(parts) == 2:
            scopes = LEGACY_SCOPES[False]
        elif parts[2] == "admin":
            scopes = LEGACY_SCOPES[True]
        else:
            scopes = _check_scopes(parts[2].split("+"), f"{where} ({name})", None)
        keys.append(ApiKey(name=name, sha256=digest, scopes=scopes))
    return keys


def _read_entries(path: Path) -> list[dict[str, Any]]:
    try:
        payload = json.loads(path.read_text())
        entries = payload["keys"]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise TypeError("'keys' must be a list of objects")
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiKeyError(f"{path}: expected {{\"keys\": [{{\"name\", \"sha256\", \"scopes\"}}]}}"
                          f" ({type(exc).__name__}: {exc})", file=path, hint=_FIX) from None
    return entries


def _key_from_entry(entry: dict[str, Any], path: Path) -> ApiKey:
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ApiKeyError(f"{path}: bad key name {name!r}", file=path, key="name", hint=_FIX)
    digest = entry.get("sha256")
    if not isinstance(digest, str) or not _HEX64.match(digest.lower()):
        raise ApiKeyError(f"{path}: key {name!r} has a malformed sha256", file=path,
                          key="sha256", hint=_FIX)
    if "scopes" in entry:
        raw = entry["scopes"]
        if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
            raise ApiKeyError(f"{path}: key {name!r}: scopes must be a list of strings",
                              file=path, key="scopes", hint=_FIX)
        scopes = _check_scopes(raw, f"{path}: key {name!r}", path)
    else:
        scopes = LEGACY_SCOPES[bool(entry.get("admin", False))]
    return ApiKey(name=name, sha256=digest.lower(), scopes=scopes)


def read_keys_file(path: Path, include_revoked: bool = False) -> list[ApiKey]:
    """Accepted keys from a keys file (empty list when the file does not exist); revoked
    entries are left out unless ``include_revoked``. Raises :class:`ApiKeyError`."""
    if not path.exists():
        return []
    keys = []
    names: set[str] = set()
    for entry in _read_entries(path):
        key = _key_from_entry(entry, path)
        if key.name in names:
            raise ApiKeyError(f"{path}: two keys named {key.name!r}", file=path, hint=_FIX)
        names.add(key.name)
        if include_revoked or not entry.get("revoked_at"):
            keys.append(key)
    return keys


def list_keys(path: Path) -> list[dict[str, Any]]:
    """Every entry of the keys file without its hash: name, scopes, created_at,
    revoked_at / rotated_at when set (for ``crimecast keys list``)."""
    if not path.exists():
        return []
    read_keys_file(path)  # validate first
    listing = []
    for entry in _read_entries(path):
        key = _key_from_entry(entry, path)
        listing.append({"name": key.name, "scopes": [s for s in SCOPES if s in key.scopes],
                        **{k: entry[k] for k in ("created_at", "rotated_at", "revoked_at")
                           if entry.get(k)}})
    return listing


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _new_key() -> str:
    return "cc_" + secrets.token_urlsafe(32)


def _write(path: Path, entries: list[dict[str, Any]]) -> None:
    # Atomic (temp file + rename): a worker never reads a half-written file.
    write_json(path, {"keys": entries})
    os.chmod(path, 0o600)


def _normalised(entries: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    """Entries rewritten with explicit scopes (legacy ``admin`` flags converted)."""
    out = []
    for entry in entries:
        key = _key_from_entry(entry, path)
        clean = {k: v for k, v in entry.items() if k != "admin"}
        clean["scopes"] = [s for s in SCOPES if s in key.scopes]
        out.append(clean)
    return out


def add_key(path: Path, name: str, scopes: Iterable[str] = ("read",)) -> str:
    """Create a new random key named ``name`` with ``scopes``, store its hash in ``path``
    (atomically) and return the plaintext key: the only time it is ever shown."""
    if not _NAME.match(name):
        raise ApiKeyError(f"key name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-'")
    chosen = _check_scopes(scopes, f"key {name!r}", None)
    read_keys_file(path)  # refuse to extend a malformed file
    entries = _normalised(_read_entries(path), path) if path.exists() else []
    if any(e["name"] == name for e in entries):
        raise ApiKeyError(f"{path}: a key named {name!r} already exists",
                          hint=f"`crimecast keys rotate {name}` gives it a new secret")
    key = _new_key()
    entries.append({"name": name, "sha256": hash_key(key),
                    "scopes": [s for s in SCOPES if s in chosen], "created_at": _now()})
    _write(path, entries)
    return key


def _change(path: Path, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    if not path.exists():
        raise ApiKeyError(f"{path} does not exist: there are no keys yet",
                          hint="create one with `crimecast keys add NAME`")
    read_keys_file(path)
    entries = _normalised(_read_entries(path), path)
    matching = [e for e in entries if e["name"] == name]
    if not matching:
        raise ApiKeyError(f"{path}: no key named {name!r}",
                          hint="`crimecast keys list` shows the names")
    change(matching[0])
    _write(path, entries)


def revoke_key(path: Path, name: str) -> None:
    """Mark key ``name`` revoked (kept in the file for the record, no longer accepted)."""
    def revoke(entry: dict[str, Any]) -> None:
        if entry.get("revoked_at"):
            raise ApiKeyError(f"{path}: key {name!r} was already revoked at "
                              f"{entry['revoked_at']}")
        entry["revoked_at"] = _now()

    _change(path, name, revoke)


def rotate_key(path: Path, name: str) -> str:
    """Give key ``name`` a new random secret (same name and scopes; the old secret stops
    working) and return the new plaintext key. A revoked key is reinstated by rotation."""
    key = _new_key()

    def rotate(entry: dict[str, Any]) -> None:
        entry["sha256"] = hash_key(key)
        entry["rotated_at"] = _now()
        entry.pop("revoked_at", None)

    _change(path, name, rotate)
    return key


def check_keys(settings: Any) -> int:
    """Validate the keys file and the keys environment variable of ``settings``
    (:class:`serving.settings.ServingSettings`); returns how many keys are accepted.
    Raises :class:`ApiKeyError` naming the file or entry and the fix."""
    file_keys = read_keys_file(settings.keys_file)
    env_value = os.environ.get(settings.keys.env)
    return len(file_keys) + len(parse_env_keys(env_value, settings.keys.env) if env_value else [])


class KeyRing:
    """The accepted keys, refreshed from the keys file when it changes (checked at most
    once every :data:`REFRESH_SECONDS`, so a request costs one ``stat`` at most).

    A file that turns malformed keeps the last good set in force; ``on_invalid(message)``
    is called once per bad version of the file. Construction raises :class:`ApiKeyError`
    when the file or ``env_value`` is malformed (a startup error)."""

    def __init__(self, file: Path, env_value: str | None = None,
                 on_invalid: Callable[[str], None] | None = None) -> None:
        self.file = file
        self.on_invalid = on_invalid
        self._env_keys = parse_env_keys(env_value) if env_value else []
        self._lock = threading.Lock()
        self._mtime: int | None = None
        self._bad_mtime: int | None = None
        self._checked = 0.0
        self._keys: tuple[ApiKey, ...] = ()
        self._load(self._stat(), strict=True)

    @property
    def keys(self) -> tuple[ApiKey, ...]:
        return self._keys

    @property
    def invalid_since(self) -> int | None:
        """The mtime (ns) of the malformed file version being ignored, or None."""
        return self._bad_mtime

    def _stat(self) -> int | None:
        try:
            return self.file.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def _load(self, mtime: int | None, strict: bool = False) -> None:
        try:
            file_keys = read_keys_file(self.file) if mtime is not None else []
        except ApiKeyError as exc:
            if strict:
                raise
            if mtime != self._bad_mtime:
                self._bad_mtime = mtime
                changed = datetime.fromtimestamp((mtime or 0) / 1e9, UTC)
                message = (f"{exc} (file changed {changed.isoformat(timespec='milliseconds')});"
                           " still using the last good key set")
                log.error("API keys file is invalid: %s", message)
                if self.on_invalid is not None:
                    try:
                        self.on_invalid(message)
                    except Exception:
                        log.exception("could not record the keys-file alert")
            return
        if self._bad_mtime is not None:
            log.warning("API keys file %s is valid again (%d keys)", self.file, len(file_keys))
        self._bad_mtime = None
        self._mtime = mtime
        self._keys = tuple(file_keys + self._env_keys)

    def refresh(self, force: bool = False) -> None:
        """Re-read the file if its mtime changed (at most once a second unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._checked < REFRESH_SECONDS:
            return
        with self._lock:
            self._checked = now
            mtime = self._stat()
            if mtime == self._mtime or (mtime is not None and mtime == self._bad_mtime):
                return
            self._load(mtime)

    def identify(self, presented: str | None) -> ApiKey | None:
        """The key matching ``presented`` (plaintext), or None."""
        self.refresh()
        if not presented:
            return None
        digest = hash_key(presented)
        match = None
        for key in self._keys:
            # No early exit: the time taken does not depend on which key matched.
            if hmac.compare_digest(key.sha256, digest):
                match = key
        return match

"""API keys: hashes only, constant-time lookup, env and file sources, scopes, revocation and
rotation, and a keys file that turns malformed while the service runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from serving.auth import (
    ApiKeyError,
    KeyRing,
    add_key,
    hash_key,
    list_keys,
    parse_env_keys,
    read_keys_file,
    revoke_key,
    rotate_key,
)


def _touch_later(path: Path) -> None:
    """Move the mtime on, as a later edit would (a test runs faster than the clock tick)."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_keys_add_stores_only_the_hash_and_the_key_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "state" / "api_keys.json"
    key = add_key(path, "dispatch")
    text = path.read_text()
    assert key not in text
    assert hash_key(key) in text
    ring = KeyRing(path)
    found = ring.identify(key)
    assert found.name == "dispatch" and found.scopes == {"read"}
    assert ring.identify(key + "x") is None
    assert ring.identify("") is None and ring.identify(None) is None


def test_duplicate_key_names_and_unknown_scopes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    add_key(path, "ops")
    with pytest.raises(ApiKeyError, match="already exists"):
        add_key(path, "ops")
    with pytest.raises(ApiKeyError, match="scopes must be"):
        add_key(path, "other", scopes=["read", "write"])


def test_env_keys_carry_names_and_scopes(tmp_path: Path) -> None:
    admin, user, feeder = "admin-secret", "user-secret", "feeder-secret"
    env = f"boss:{hash_key(admin)}:admin, app:{hash_key(user)}, feed:{hash_key(feeder)}:outcomes"
    ring = KeyRing(tmp_path / "missing.json", env)
    assert ring.identify(admin).scopes == {"read", "outcomes", "dosage", "admin"}  # legacy admin flag
    assert ring.identify(user).scopes == {"read"}
    assert ring.identify(feeder).scopes == {"outcomes"}


def test_a_legacy_keys_file_without_scopes_still_works(tmp_path: Path) -> None:
    """Files written before scopes: no scope = read; an admin flag = every scope."""
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [
        {"name": "old-app", "sha256": hash_key("a"), "admin": False},
        {"name": "old-ops", "sha256": hash_key("b"), "admin": True}]}))
    ring = KeyRing(path)
    assert ring.identify("a").scopes == {"read"}
    assert ring.identify("b").scopes == {"read", "outcomes", "dosage", "admin"}
    add_key(path, "new")  # rewriting converts the flags into scopes
    assert {k["name"]: k["scopes"] for k in list_keys(path)} == {
        "old-app": ["read"], "old-ops": ["read", "outcomes", "dosage", "admin"], "new": ["read"]}


def test_malformed_env_entry_names_the_entry_and_never_echoes_a_key() -> None:
    with pytest.raises(ApiKeyError, match="entry 2 \\(app\\)") as raised:
        parse_env_keys(f"boss:{hash_key('a')},app:plaintext-key")
    assert "plaintext-key" not in str(raised.value)


def test_keyring_picks_up_keys_added_while_running(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": []}))
    ring = KeyRing(path)
    key = add_key(path, "late")
    _touch_later(path)
    ring.refresh(force=True)
    assert ring.identify(key).name == "late"


def test_revoke_and_rotate_rewrite_the_file_and_reach_a_running_keyring(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first = add_key(path, "dispatch", scopes=["read", "outcomes"])
    ring = KeyRing(path)
    assert ring.identify(first) is not None

    second = rotate_key(path, "dispatch")
    _touch_later(path)
    ring.refresh(force=True)
    assert ring.identify(first) is None
    assert ring.identify(second).scopes == {"read", "outcomes"}

    revoke_key(path, "dispatch")
    _touch_later(path)
    ring.refresh(force=True)
    assert ring.identify(second) is None
    assert read_keys_file(path) == []  # kept for the record, no longer accepted
    assert "revoked_at" in list_keys(path)[0]
    with pytest.raises(ApiKeyError, match="no key named"):
        revoke_key(path, "nobody")


def test_a_keys_file_broken_at_runtime_keeps_the_last_good_set_and_alerts_once(
        tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key = add_key(path, "dispatch")
    alerts: list[str] = []
    ring = KeyRing(path, on_invalid=alerts.append)
    path.write_text('{"keys": [{"name": "dispatch", "sha256": ')  # a hand edit gone wrong
    _touch_later(path)
    for _ in range(3):
        ring.refresh(force=True)
        assert ring.identify(key).name == "dispatch"  # still accepted, as before
        assert ring.identify("not-a-key") is None  # still refused, as before
    assert len(alerts) == 1 and "last good key set" in alerts[0] and str(path) in alerts[0]
    assert ring.invalid_since is not None

    path.write_text(json.dumps({"keys": []}))  # fixed: the file is authoritative again
    _touch_later(path)
    _touch_later(path)
    ring.refresh(force=True)
    assert ring.identify(key) is None and ring.invalid_since is None


def test_a_keys_file_malformed_at_startup_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text('{"keys": [{"name": "x", "sha256": "abc"}]}')
    with pytest.raises(ApiKeyError, match="malformed sha256") as raised:
        KeyRing(path)
    assert raised.value.file == str(path) and raised.value.hint

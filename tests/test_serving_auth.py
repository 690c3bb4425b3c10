"""API keys: hashes only, constant-time lookup, env and file sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving.auth import ApiKeyError, KeyRing, add_key, hash_key, parse_env_keys


def test_keys_add_stores_only_the_hash_and_the_key_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "state" / "api_keys.json"
    key = add_key(path, "dispatch", admin=False)
    text = path.read_text()
    assert key not in text
    assert hash_key(key) in text
    ring = KeyRing(path)
    assert ring.identify(key).name == "dispatch"
    assert ring.identify(key + "x") is None
    assert ring.identify("") is None and ring.identify(None) is None


def test_duplicate_key_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    add_key(path, "ops")
    with pytest.raises(ApiKeyError, match="already exists"):
        add_key(path, "ops")


def test_env_keys_carry_names_and_admin_flags(tmp_path: Path) -> None:
    admin, user = "admin-secret", "user-secret"
    env = f"boss:{hash_key(admin)}:admin, app:{hash_key(user)}"
    ring = KeyRing(tmp_path / "missing.json", env)
    assert ring.identify(admin).admin is True
    assert ring.identify(user).admin is False


def test_malformed_env_entry_names_the_entry_and_never_echoes_a_key() -> None:
    with pytest.raises(ApiKeyError, match="entry 2 \\(app\\)"):
        parse_env_keys(f"boss:{hash_key('a')},app:plaintext-key")


def test_keyring_picks_up_keys_added_while_running(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": []}))
    ring = KeyRing(path)
    key = add_key(path, "late")
    ring._checked = 0.0  # skip the once-a-second stat throttle
    assert ring.identify(key).name == "late"

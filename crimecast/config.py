"""The one loader of settings.

Each concern (data, pipeline, models, tracking, serving, monitoring, ...) declares a typed
settings class next to its code by subclassing :class:`ConcernSettings` and naming its YAML
file. Values come from ``configs/<concern>.yaml`` and may be overridden by environment
variables ``CRIMECAST_<CONCERN>__<KEY>`` (nested keys joined with ``__``), e.g.
``CRIMECAST_DATA__SOURCE=synthetic``.

A bad value raises :class:`ConfigError` naming the file, the key and what was expected::

    class DataSettings(ConcernSettings):
        concern: ClassVar[str] = "data"
        source: Literal["philadelphia", "synthetic", "csv"] = "philadelphia"

    settings = DataSettings.load()
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from crimecast.errors import CrimecastError
from crimecast.paths import project_home

S = TypeVar("S", bound="ConcernSettings")


class ConfigError(CrimecastError, ValueError):
    """A configuration file or override is wrong; the message says where and why."""


class ConcernSettings(BaseModel):
    """Base for one concern's typed settings (unknown keys are errors, to catch typos)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    concern: ClassVar[str] = ""

    @classmethod
    def config_path(cls, home: Path | None = None) -> Path:
        return (home or project_home()) / "configs" / f"{cls.concern}.yaml"

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> Self:
        """Read the YAML file (missing file means all defaults), apply env and keyword
        overrides, validate. Keyword overrides win over env, env over the file."""
        file = Path(path) if path else cls.config_path()
        raw: dict[str, Any] = {}
        if file.exists():
            try:
                loaded = yaml.safe_load(file.read_text()) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
            if not isinstance(loaded, dict):
                raise ConfigError(f"{file}: expected a mapping of keys to values at the top")
            raw = loaded
        _merge(raw, _env_overrides(cls.concern))
        _merge(raw, overrides)
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(_describe(file, cls.concern, exc)) from None

    def as_params(self) -> dict[str, Any]:
        """Flat ``{"a.b": value}`` view, for logging as MLflow params."""
        out: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for key, inner in value.items():
                    walk(f"{prefix}.{key}" if prefix else str(key), inner)
            else:
                out[prefix] = value

        walk("", self.model_dump(mode="json"))
        return out


def _env_overrides(concern: str) -> dict[str, Any]:
    prefix = f"CRIMECAST_{concern.upper()}__"
    result: dict[str, Any] = {}
    for name, value in os.environ.items():
        if not name.startswith(prefix):
            continue
        keys = [k.lower() for k in name[len(prefix):].split("__")]
        node = result
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = yaml.safe_load(value) if value != "" else value
    return result


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _describe(file: Path, concern: str, exc: ValidationError) -> str:
    lines = [f"{file}: invalid settings for '{concern}':"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        got = err.get("input")
        got_text = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  key '{key}': {err['msg']}{got_text}")
    lines.append(f"  (environment overrides use CRIMECAST_{concern.upper()}__<KEY>)")
    return "\n".join(lines)

"""One operating week: refresh → repro (through promote) → reload → monitor → report.

:func:`run_cycle` runs the steps of ``crimecast cycle`` in order, each a command (a
subprocess) or a function, and keeps ``state/cycle.json``:

- **one at a time**: it holds an exclusive, non-blocking ``flock`` on ``state/cycle.lock``
  for the whole run; a second cycle stops at once with :class:`CycleLocked` naming the
  holder (pid, start time). The kernel drops the lock when the holder dies, so a crashed
  cycle never blocks the next one.
- **idempotent and resumable**: ``refresh`` and ``repro`` always run (a no-op refresh and
  an up-to-date ``dvc repro`` cost seconds); the later steps are keyed by the pipeline
  state after repro (the SHA-256 of ``dvc.lock``), so a rerun with no new data skips the
  steps already done for that state, and a rerun after a failure resumes at the failed
  step. ``repro`` reports whether anything was retrained.
- **a failed step** stops the cycle with :class:`CycleFailed` naming it (the CLI exits
  with the step's code).

Settings: ``configs/cycle.yaml`` (:class:`CycleSettings`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from crimecast.config import ConcernSettings
from crimecast.errors import CrimecastError
from crimecast.io import write_json
from crimecast.paths import project_home, resolve

STEPS: tuple[str, ...] = ("refresh", "repro", "reload", "monitor", "report")
#: Steps that run on every cycle; the others are skipped once done for a pipeline state.
ALWAYS: frozenset[str] = frozenset({"refresh", "repro"})
_STAGE_RUN = re.compile(r"Running stage '([^']+)'")


class CycleSettings(ConcernSettings):
    """``configs/cycle.yaml``: what one operating week runs."""

    concern: ClassVar[str] = "cycle"

    refresh: Literal["none", "api"] = Field(
        "none", description="none: the source is an embedded snapshot (nothing to fetch); "
                            "api: `crimecast data refresh` from the city's open-data API")
    refresh_overlap_weeks: int = Field(
        2, ge=0, description="api refresh re-downloads this many weeks before the last one "
                             "(late corrections)")
    repro_target: str = Field("promote", description="the dvc stage the cycle reproduces up to")
    service_url: str | None = Field(
        None, description="prediction API to send the reload signal to (POST /reload); "
                          "null: the service follows @champion by polling")
    admin_key_env: str = Field("CRIMECAST_ADMIN_KEY",
                               description="environment variable holding an admin API key")
    reload_timeout_s: float = Field(60.0, gt=0)
    state_path: str = "state/cycle.json"
    lock_path: str = "state/cycle.lock"


class CycleLocked(CrimecastError):
    """Another cycle holds the lock."""


class CycleFailed(CrimecastError):
    """A step failed; ``step`` and ``returncode`` say which and how."""

    def __init__(self, step: str, returncode: int, detail: str = "") -> None:
        super().__init__(f"cycle failed at step '{step}' (exit {returncode}){detail}",
                         hint=f"fix the cause, then rerun `crimecast cycle`: it resumes at "
                              f"'{step}'")
        self.step = step
        self.returncode = returncode


@dataclass
class Command:
    """An argument list run in the project home; ``allowed`` maps non-zero exit codes that
    are not failures to a note (``monitor check`` exits 1 when it raised alerts)."""

    args: list[str]
    allowed: dict[int, str] = field(default_factory=dict)


@dataclass
class Step:
    """One step: ``commands`` run in order, or a ``function`` returning a one-line note
    (``describe`` says what it does, for ``--dry-run``)."""

    name: str
    commands: list[Command] = field(default_factory=list)
    function: Callable[[], str] | None = None
    describe: str = ""


@dataclass
class CycleResult:
    """What a cycle did: per step ``"ran"``, ``"skipped"`` or ``"would run"`` (dry run),
    the stages dvc ran, whether a model was trained, and the pipeline-state key."""

    steps: dict[str, str]
    stages_run: list[str]
    trained: bool
    key: str | None


@contextmanager
def cycle_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` or raise :class:`CycleLocked` at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise CycleLocked(f"another cycle is running ({holder}); not starting a second one",
                              file=path, hint="wait for it to finish") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, started "
                     f"{datetime.now(UTC).isoformat(timespec='seconds')}")
        handle.flush()
        yield  # the lock goes with the file handle, when the with block closes it


def pipeline_key(home: Path | None = None) -> str | None:
    """SHA-256 of ``dvc.lock`` (the versions of every stage's inputs and outputs), or None
    when the pipeline never ran."""
    lock = (home or project_home()) / "dvc.lock"
    return hashlib.sha256(lock.read_bytes()).hexdigest() if lock.exists() else None


def read_state(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {"key": None, "done": {}}


def _run(command: Command, echo: Callable[[str], None], env: dict[str, str]
         ) -> tuple[int, str]:
    """Run a command, echoing its output line by line; returns (code, output)."""
    process = subprocess.Popen(command.args, cwd=project_home(), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        echo("    " + line.rstrip())
    return process.wait(), "".join(lines)


def run_cycle(steps: list[Step], settings: CycleSettings, echo: Callable[[str], None],
              dry_run: bool = False, env: dict[str, str] | None = None) -> CycleResult:
    """Run ``steps`` (named as :data:`STEPS`) under the lock, keeping the state file.

    ``dry_run`` lists what would run and skip, running nothing and taking no lock.
    Raises :class:`CycleLocked` or :class:`CycleFailed`."""
    state_path = resolve(settings.state_path)
    env = env or dict(os.environ)
    if dry_run:
        state = read_state(state_path)
        key = pipeline_key()
        plan: dict[str, str] = {}
        for step in steps:
            done = step.name not in ALWAYS and state.get("key") == key and \
                step.name in state.get("done", {})
            plan[step.name] = "skip (done for this pipeline state)" if done else "would run"
            what = ("; ".join(" ".join(c.args) for c in step.commands) if step.commands
                    else step.describe or "(built in)")
            echo(f"{step.name:8s} {plan[step.name]}: {what}")
        return CycleResult(plan, [], False, key)

    with cycle_lock(resolve(settings.lock_path)):
        state = read_state(state_path)
        result = CycleResult({}, [], False, None)
        started = datetime.now(UTC).isoformat(timespec="seconds")
        for step in steps:
            key = pipeline_key()
            if (step.name not in ALWAYS and state.get("key") == key
                    and step.name in state.get("done", {})):
                result.steps[step.name] = "skipped"
                echo(f"[{step.name}] already done for this pipeline state "
                     f"(dvc.lock {str(key)[:12]}) on {state['done'][step.name]}; skipped")
                continue
            echo(f"[{step.name}]")
            if step.function is not None:
                try:
                    echo("    " + step.function())
                except CrimecastError as exc:
                    _record_failure(state_path, state, step.name, started)
                    raise CycleFailed(step.name, 1, f": {exc}") from None
            output = ""
            for command in step.commands:
                code, text = _run(command, echo, env)
                output += text
                if code != 0 and code not in command.allowed:
                    _record_failure(state_path, state, step.name, started)
                    raise CycleFailed(step.name, code)
                if code in command.allowed:
                    echo("    " + command.allowed[code])
            if step.commands and step.name == "repro":
                result.stages_run = _STAGE_RUN.findall(output)
                result.trained = "train" in result.stages_run
                echo("    " + (f"retrained: stages run {result.stages_run}"
                               if result.trained else
                               "no new data or settings: nothing retrained"
                               + (f" (stages run: {result.stages_run})"
                                  if result.stages_run else " (every stage up to date)")))
            new_key = pipeline_key()
            if new_key != state.get("key"):
                # A new pipeline state: the later steps are to do again; what this run
                # already did (refresh, repro) stays done.
                state = {"key": new_key, "done": {k: v for k, v in state["done"].items()
                                                  if k in ALWAYS and k in result.steps}}
            state["done"][step.name] = datetime.now(UTC).isoformat(timespec="seconds")
            state.pop("failed", None)
            state["last_started"] = started
            write_json(state_path, state)
            result.steps[step.name] = "ran"
        result.key = state.get("key")
        state["last_finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        state["last_trained"] = result.trained
        write_json(state_path, state)
        return result


def _record_failure(path: Path, state: dict[str, Any], step: str, started: str) -> None:
    write_json(path, {**state, "failed": {"step": step, "at": datetime.now(UTC).isoformat(
        timespec="seconds")}, "last_started": started})

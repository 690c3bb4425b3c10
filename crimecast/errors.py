"""Mistakes a user can fix, and how every entry point reports them.

A :class:`CrimecastError` carries what went wrong, where (``file``, ``key``) and how to
fix it (``hint``). The ``crimecast`` command and every pipeline stage print it as one
line (plus a ``fix:`` line when there is a hint) and exit non-zero, never with a
traceback; ``--debug`` (or ``CRIMECAST_DEBUG=1``) shows the traceback for developers.
Errors that are not a ``CrimecastError`` are bugs and keep their traceback.

    raise CrimecastError("panel has 52 weeks, the backtest needs 60",
                         file="configs/evaluation.yaml", key="backtest_weeks",
                         hint="lower backtest_weeks to 26 or less, or add history")
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

#: Exit code of a user mistake (a bad config, a missing input, a wrong argument).
USER_ERROR_EXIT = 2


class CrimecastError(Exception):
    """A mistake the user can fix; the message says what, ``file``/``key`` say where and
    ``hint`` says how."""

    def __init__(self, message: str, *, file: str | Path | None = None,
                 key: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = str(file) if file is not None else None
        self.key = key
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def lines(self) -> list[str]:
        """The report: ``error: <where>: <what>`` and, with a hint, ``  fix: <how>``."""
        where = ""
        if self.file and self.file not in self.message:
            where = f"{self.file}"
        if self.key and f"'{self.key}'" not in self.message and self.key not in self.message:
            where = f"{where} key '{self.key}'" if where else f"key '{self.key}'"
        head = f"error: {where}: {self.message}" if where else f"error: {self.message}"
        return [head] + ([f"  fix: {self.hint}"] if self.hint else [])


def debug_enabled() -> bool:
    return os.environ.get("CRIMECAST_DEBUG", "").lower() in ("1", "true", "yes")


def report(exc: CrimecastError, stream: object = None) -> None:
    """Print ``exc`` the one-line way (to stderr by default)."""
    out = stream or sys.stderr
    for line in exc.lines():
        print(line, file=out)  # type: ignore[arg-type]


def exit_with(exc: CrimecastError) -> NoReturn:
    report(exc)
    sys.exit(USER_ERROR_EXIT)


def run_main(main: Callable[[], object]) -> None:
    """Run a stage's ``main``: a :class:`CrimecastError` becomes one line and exit code 2
    (the traceback only with ``CRIMECAST_DEBUG=1``)."""
    try:
        main()
    except CrimecastError as exc:
        if debug_enabled():
            raise
        exit_with(exc)

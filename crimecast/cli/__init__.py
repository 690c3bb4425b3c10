"""The ``crimecast`` command line: the composition root that wires all parts.

Each topic lives in its own module under ``crimecast/cli/`` and defines a ``typer.Typer``
named ``app`` (or a function named ``command`` for single commands). Topic modules keep
heavy imports (torch, mlflow, bentoml, evidently, and the ``training``/``serving``/
``monitoring`` packages) inside the command functions so ``crimecast --help`` stays fast.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated

import typer

from crimecast.errors import USER_ERROR_EXIT, CrimecastError, debug_enabled

app = typer.Typer(
    name="crimecast",
    help="Place-based weekly crime forecasting: data, models, serving and oversight.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)



@app.callback()
def _root(
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show the full traceback of an error (also CRIMECAST_DEBUG=1).")] = False,
) -> None:
    """Place-based weekly crime forecasting: data, models, serving and oversight."""
    if debug:
        # The environment carries it into the stages and steps run as subprocesses.
        os.environ["CRIMECAST_DEBUG"] = "1"


# (module under crimecast.cli, sub-command group name or None for top-level commands)
_TOPICS: list[tuple[str, str | None]] = [
    ("data", "data"),
    ("city", "city"),
    ("pipeline", None),
    ("models", None),
    ("serve", None),
    ("monitor", None),
    ("impact", None),
    ("cycle", None),
    ("dosage", None),
    ("demo", None),
]


def _register() -> None:
    for module_name, group in _TOPICS:
        try:
            module = importlib.import_module(f"crimecast.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"crimecast.cli.{module_name}":
                continue  # topic not built yet
            raise
        sub = getattr(module, "app", None)
        if sub is not None:
            if group:
                app.add_typer(sub, name=group)
            else:
                # top-level commands and groups the module declares itself
                for info in sub.registered_commands:
                    app.registered_commands.append(info)
                for info in sub.registered_groups:
                    app.registered_groups.append(info)


_register()


def main() -> None:
    """Entry point: a :class:`~crimecast.errors.CrimecastError` (a user mistake) is printed
    as one line with its fix and exits 2; ``--debug`` shows the traceback instead."""
    try:
        app()
    except CrimecastError as exc:
        if debug_enabled():
            raise
        for number, line in enumerate(exc.lines()):
            typer.secho(line, fg=typer.colors.RED if number == 0 else None, err=True)
        sys.exit(USER_ERROR_EXIT)


if __name__ == "__main__":
    main()

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
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show the full traceback of an error (also CRIMECAST_DEBUG=1).")] = False,
) -> None:
    """Place-based weekly crime forecasting: data, models, serving and oversight."""
    if debug:
        # The environment carries it into the stages and steps run as subprocesses.
        os.environ["CRIMECAST_DEBUG"] = "1"
    if ctx.invoked_subcommand != "city":  # `city init` may write a new home's configs
        check_home()


def check_home() -> None:
    """A ``CRIMECAST_HOME`` that does not exist, or holds no ``configs/``, is a mistake
    (every command would otherwise fail later with a missing-file traceback)."""
    from pathlib import Path

    env = os.environ.get("CRIMECAST_HOME")
    if not env:
        return
    home = Path(env)
    if not home.is_dir():
        raise CrimecastError(f"CRIMECAST_HOME={env} is not a directory",
                             hint="point it at the project folder that holds configs/, or "
                                  "unset it to use the current folder")
    if not (home / "configs").is_dir():
        raise CrimecastError(f"CRIMECAST_HOME={env} holds no configs/ folder",
                             hint="point it at the project folder that holds configs/ (the "
                                  "repository root), or run `crimecast city init` there")


#: Library warnings no user can act on (deprecations inside Evidently, MLflow, litestar,
#: numpy and pandas internals, scikit-learn's R² on one-row groups). crimecast's own
#: warnings (e.g. a category without incidents) still show; --debug shows everything.
QUIET_WARNINGS: tuple[tuple[str, type[Warning] | None, str], ...] = (
    ("", DeprecationWarning, ""),
    ("", PendingDeprecationWarning, ""),
    ("", FutureWarning, ""),
    ("R\\^2 score is not well-defined", None, ""),
    ("", None, "(evidently|litestar|mlflow|sklearn|pydantic|numpy|pandas|plotly|torch|bentoml)"),
)


def quiet_library_warnings() -> None:
    import warnings

    for message, category, module in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category or Warning,
                                module=module)
    # Stages and steps run as subprocesses inherit the same filter.
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning,ignore::FutureWarning")


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
    if not debug_enabled() and "--debug" not in sys.argv:
        quiet_library_warnings()
    try:
        app()
    except CrimecastError as exc:
        if debug_enabled():
            raise
        for number, line in enumerate(exc.lines()):
            typer.secho(line, fg=typer.colors.RED if number == 0 else None, err=True)
        sys.exit(USER_ERROR_EXIT)
    except FileNotFoundError as exc:
        if debug_enabled():
            raise
        # A missing input under the project home: a step not run yet, or the wrong home.
        from crimecast.paths import project_home

        missing = exc.filename or str(exc)
        typer.secho(f"error: {missing} not found", fg=typer.colors.RED, err=True)
        typer.echo(f"  fix: run the step that writes it first (`crimecast pipeline` or `dvc "
                   f"repro` for artifacts/), or check the project home ({project_home()}; "
                   "set CRIMECAST_HOME)", err=True)
        sys.exit(USER_ERROR_EXIT)


if __name__ == "__main__":
    main()

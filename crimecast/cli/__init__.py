"""The ``crimecast`` command line: the composition root that wires all parts.

Each topic lives in its own module under ``crimecast/cli/`` and defines a ``typer.Typer``
named ``app`` (or a function named ``command`` for single commands). Topic modules keep
heavy imports (torch, mlflow, bentoml, evidently, and the ``training``/``serving``/
``monitoring`` packages) inside the command functions so ``crimecast --help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys

import typer

from crimecast.config import ConfigError
from crimecast.contracts import ContractError

app = typer.Typer(
    name="crimecast",
    help="Place-based weekly crime forecasting: data, models, serving and oversight.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)



@app.callback()
def _root() -> None:
    """Place-based weekly crime forecasting: data, models, serving and oversight."""


# (module under crimecast.cli, sub-command group name or None for top-level commands)
_TOPICS: list[tuple[str, str | None]] = [
    ("data", "data"),
    ("pipeline", None),
    ("models", None),
    ("serve", None),
    ("monitor", None),
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
    try:
        app()
    except (ConfigError, ContractError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()

"""Model lifecycle commands: ``train``, ``tune``, ``evaluate``, ``promote``, ``rollback``
and the ``models`` group (``history``, ``info``).

Heavy imports (mlflow, optuna, torch, the ``training`` stages) stay inside the commands so
``crimecast --help`` stays fast.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from crimecast.contracts import ARTIFACTS

app = typer.Typer(no_args_is_help=True)
models_app = typer.Typer(help="Inspect the model registry: alias history, version info.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")

Actor = Annotated[str | None, typer.Option(help="Who acts, for the audit log (default: $USER).")]


def _names() -> str:
    from crimecast.forecast.names import MODEL_NAMES

    return ", ".join(MODEL_NAMES)


def _console() -> Any:
    from rich.console import Console

    return Console()


@app.command()
def train(
    model: Annotated[str | None, typer.Option(help=f"Model to train, one of: {_names()} "
                                                   "(default: models.yaml default_model).")] = None,
    actor: Actor = None,
) -> None:
    """Backtest and fit a model, log it to MLflow, register it as @challenger.

    Hyperparameters: configs/models.yaml overlaid with artifacts/best_params.json when it
    was tuned for the same model. Writes artifacts/train_run.json.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from crimecast.forecast.models import model_class
    from training import train as stage

    if model is not None:
        model_class(model)  # an unknown name is one line, before any work
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=_console(), transient=True) as bar:
        bar.add_task(f"training {model or 'the default model'}: rolling backtest, then the "
                     "final fit and the MLflow log (a few minutes on a laptop)", total=None)
        payload = stage.run(model, actor)
    metrics = payload["metrics"]
    _console().print(
        f"[green]registered[/] {payload['model_name']} as version {payload['version']} "
        f"(@challenger), run {payload['run_id']}\n"
        f"  backtest: Poisson deviance {metrics.get('overall.poisson_deviance', float('nan')):.4f}, "
        f"PAI@5% {metrics.get('overall.pai_at_5pct', float('nan')):.2f}\n"
        f"  wrote {ARTIFACTS.train_run}")


@app.command()
def tune(
    trials: Annotated[int | None, typer.Option(help="Trials to run in this process (default: tuning.yaml).")] = None,
    model: Annotated[str | None, typer.Option(help=f"Model to tune, one of: {_names()} (default: tuning.yaml model).")] = None,
    storage: Annotated[str | None, typer.Option(help="Optuna storage URL, e.g. postgresql+psycopg://... (default: SQLite state/optuna.db).")] = None,
    study: Annotated[str | None, typer.Option(help="Study name; workers with the same name share trials.")] = None,
) -> None:
    """Optuna search (seeded TPE, median pruning); each trial a child MLflow run.

    Start the same command in several processes or machines with one --storage and
    --study to spread the trials. Writes artifacts/best_params.json (best over all workers).
    """
    from training import tune as stage

    payload = stage.run(trials, model, storage, study)
    _console().print(
        f"best trial {payload['trial']} of study {payload['study']} "
        f"({payload['trials_complete']} complete, {payload['trials_pruned']} pruned): "
        f"validation deviance {payload['value']:.4f}\n  params {payload['params']}\n"
        f"  wrote {ARTIFACTS.best_params}")


@app.command()
def evaluate(
    alias: Annotated[str, typer.Option(help="Alias of the version to evaluate.")] = "challenger",
) -> None:
    """Backtest a registered version, the champion and the baselines on the same windows,
    with paired 95 % confidence intervals, the ceilings and the gate's policy.

    Writes artifacts/evaluation.json and logs an MLflow run.
    """
    from crimecast.lifecycle.registry import RegistryError
    from training import evaluate as stage

    try:
        payload = stage.run(alias)
    except RegistryError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    console = _console()
    for table in evaluation_tables(payload):
        console.print(table)
    preview = payload["gate_preview"]
    console.print(f"\n[bold]Policy[/]: {payload['policy']['text']}")
    verdict = "would be promoted" if preview["promote"] else "would be refused"
    console.print(f"\n[bold]Gate preview[/] against {preview['against']}: {verdict} "
                  f"(accuracy outcome: {preview['outcome']})")
    for check in preview["checks"]:
        mark = "[green]ok[/]" if check["passed"] else "[red]FAIL[/]"
        console.print(f"  {mark} {check.get('plain', check['check'])}")
    console.print(f"wrote {ARTIFACTS.evaluation}")


def _ci_text(entry: dict[str, Any] | None) -> str:
    """``+1.23 % [-0.40, +2.10]``: a relative change and its 95 % CI, in percent."""
    if not entry or entry.get("relative") is None or None in (entry.get("relative_ci") or [None]):
        return ""
    low, high = entry["relative_ci"]
    return f"{entry['relative'] * 100:+.2f} % [{low * 100:+.2f}, {high * 100:+.2f}]"


def evaluation_tables(payload: dict[str, Any]) -> list[Any]:
    """Rich tables of an evaluation payload: per target at horizon 1, every model with its
    paired difference from the reference, then the ceilings; coverage by group."""
    from rich.table import Table

    tables = []
    reference = payload["reference"]
    pai = f"pai@{payload['policy'].get('pai_area_share', 0.05) * 100:g}%"
    for target in next(iter(payload["headline"].values())):
        table = Table(title=f"Target '{target}', one week ahead: paired 95 % CIs against "
                            f"{reference} (same backtest weeks)")
        for column in ("model", "deviance", "Δ deviance", "log score", "RPS", "hit@5%",
                       "Δ hit@5%", pai.upper(), f"Δ {pai.upper()}", "cov 80% raw→cal",
                       "gap closed (deviance)"):
            table.add_column(column)
        for label, headline in payload["headline"].items():
            m = headline.get(target, {})
            versus = payload["comparisons"].get(label, {}).get(target, {})
            gap = payload["gap_closed"].get(label, {}).get(target, {}).get("smoother", {})
            table.add_row(label, _n(m.get("poisson_deviance"), 4),
                          _ci_text(versus.get("poisson_deviance")), _n(m.get("log_score"), 4),
                          _n(m.get("rps"), 4), _n(m.get("hit_rate@5%"), 4),
                          _ci_text(versus.get("hit_rate@5%")), _n(m.get(pai), 3),
                          _ci_text(versus.get(pai)),
                          f"{_n(m.get('coverage_80_uncalibrated'), 3)}→"
                          f"{_n(m.get('coverage_80'), 3)}",
                          _n(gap.get("poisson_deviance"), 2))
        ceilings = payload["ceilings"]
        for name, words in (("smoother", "two-sided smoother (ceiling)"),
                            ("hindsight", "perfect hindsight (ceiling)"),
                            ("reference_mean", "52-week mean (reference)")):
            m = ceilings.get(name, {}).get(target, {})
            versus = payload["ceiling_comparisons"].get(name, {}).get(target, {})
            table.add_row(f"[italic]{words}[/]", _n(m.get("poisson_deviance"), 4),
                          ("model vs ceiling " + _ci_text(versus.get("poisson_deviance")))
                          if versus.get("poisson_deviance") else "",
                          _n(m.get("log_score"), 4), _n(m.get("rps"), 4),
                          _n(m.get("hit_rate@5%"), 4),
                          ("model vs ceiling " + _ci_text(versus.get("hit_rate@5%")))
                          if versus.get("hit_rate@5%") else "",
                          _n(m.get(pai), 3), "", "", "")
        tables.append(table)
    label = next(iter(payload["headline"]))
    groups = payload["coverage_by_group"].get(label, {}).get("all", {})
    if groups:
        table = Table(title=f"{label}: 80 % interval coverage by group (target 'all', one "
                            "week ahead), before → after calibration on the validation weeks")
        for column in ("group", "areas", "before", "after"):
            table.add_column(column)
        for group, row in groups.items():
            table.add_row(group, f"{row['areas']:.0f}", _n(row["coverage_80_uncalibrated"], 3),
                          _n(row["coverage_80"], 3))
        tables.append(table)
    return tables


def _n(value: Any, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


@app.command()
def promote(actor: Actor = None) -> None:
    """Promote @challenger to @champion if it passes the accuracy and fairness gate.

    A refusal is a decision (exit code 0). The decision, with metrics and reason, is
    appended to state/audit.jsonl, tagged on the model version and written to
    artifacts/promotion.json.
    """
    from crimecast.lifecycle.registry import RegistryError
    from training import promote as stage

    try:
        record = stage.run(actor)
    except RegistryError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    colour = "green" if record["decision"] == "promoted" else "yellow"
    console = _console()
    console.print(f"[{colour}]{record['decision']}[/] ({record.get('outcome') or '-'}): "
                  f"v{record['challenger_version']} (reference: {record.get('reference')})")
    if record.get("policy"):
        console.print(f"  policy: {record['policy']['text']}")
    for check in record.get("checks", []):
        mark = "[green]ok[/]" if check["passed"] else "[red]FAIL[/]"
        console.print(f"  {mark} {check.get('plain') or check['check']}")
    if record.get("exception"):
        console.print(f"  [bold red]PUBLIC EXCEPTION[/]: {record['exception']['reason']}")
    after = record.get("champion_after")
    console.print(f"@champion is now {'v' + after if after else 'unset'}")
    console.print(f"wrote {ARTIFACTS.promotion} and appended to {_audit()}")


@app.command()
def rollback(
    actor: Actor = None,
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")] = "",
) -> None:
    """Give @champion back to the previous champion (from the audit log) and record it."""
    from crimecast.lifecycle.promotion import rollback as do_rollback
    from crimecast.lifecycle.registry import RegistryError

    try:
        record = do_rollback(actor=actor, reason=reason)
    except RegistryError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    _console().print(f"rolled back: @champion v{record['challenger_version']} -> "
                     f"v{record['champion_version']}; appended to {_audit()}")


def _versions(record: dict[str, Any]) -> str:
    changes = record.get("alias_changes") or []
    if changes:
        return ", ".join(f"@{c['alias']} {_version(c.get('from'))}→{_version(c.get('to'))}"
                         for c in changes)
    challenger, champion = record.get("challenger_version"), record.get("champion_version")
    if record.get("event") == "promote":
        return f"{_version(challenger)} vs {record.get('reference') or _version(champion)}"
    return _version(challenger or champion)


@models_app.command("history")
def history(
    as_json: Annotated[bool, typer.Option("--json", help="Print the audit records as JSON lines.")] = False,
) -> None:
    """Every decision, oldest first, from the audit log: registrations, promotions AND
    refusals, rollbacks, and alias changes made outside crimecast (`manual`)."""
    from rich.table import Table

    from crimecast.lifecycle.audit import read_audit

    records = read_audit()
    if as_json:
        for record in records:
            typer.echo(json.dumps(record, default=str))
        return
    table = Table(title=f"Decisions ({_audit()})")
    for column in ("when (UTC)", "who", "event", "decision", "versions", "reason"):
        table.add_column(column, overflow="fold")
    for r in records:
        decision = str(r.get("decision") or "")
        style = {"refused": "yellow", "manual": "bold red", "promoted": "green"}.get(decision)
        table.add_row(str(r.get("at"))[:19], str(r.get("actor")), str(r.get("event")),
                      f"[{style}]{decision}[/]" if style else decision, _versions(r),
                      str(r.get("reason") or "")[:300])
    if not records:
        typer.echo(f"no decisions recorded yet in {_audit()}")
        return
    _console().print(table)


@models_app.command("info")
def info(alias: Annotated[str, typer.Option(help="Alias to describe.")] = "champion") -> None:
    """What the registry knows about the version holding an alias (JSON)."""
    from crimecast.lifecycle.registry import RegistryError, model_info

    try:
        details = model_info(alias)
    except RegistryError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    overall = {k: v for k, v in details["backtest_metrics"].items() if k.startswith("overall.")}
    typer.echo(json.dumps({**details, "backtest_metrics": overall}, indent=2, default=str))


def _audit() -> str:
    from crimecast.lifecycle.audit import audit_path

    return str(audit_path())


def _version(value: Any) -> str:
    return "-" if value is None else f"v{value}"

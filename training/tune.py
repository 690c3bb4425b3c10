"""Stage ``tune``: Optuna search for the configured model; best params for the train stage.

Joins (or creates) the study in the configured storage, runs ``trials`` trials scored on
the validation weeks before the backtest window (configs/evaluation.yaml), and writes
artifacts/best_params.json with the best trial over all workers that share the study.

    python -m training.tune [--trials N] [--model gnn] [--storage URL] [--study NAME]
"""

from __future__ import annotations

import argparse
from typing import Any

from crimecast.contracts import ARTIFACTS, AreaGraph, Panel
from crimecast.data.panel import target_panel
from crimecast.errors import run_main
from crimecast.io import write_json

READS: tuple[str, ...] = ("panel", "graph", "areas")
WRITES: tuple[str, ...] = ("best_params",)


def run(trials: int | None = None, model: str | None = None, storage: str | None = None,
        study: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Tune, then write and return the best_params.json payload."""
    from crimecast.forecast.models import ModelsSettings
    from crimecast.lifecycle.tuning import TuningSettings, tune

    settings = TuningSettings.load()
    model = model or settings.model
    panel, graph = target_panel(Panel.load()), AreaGraph.load()
    result = tune(panel, graph, settings=settings, trials=trials, model=model, storage=storage,
                  study_name=study, base_params=ModelsSettings.load().params_for(model),
                  progress=progress)
    payload = result.as_dict()
    write_json(ARTIFACTS.best_params, payload)
    return payload


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--storage", default=None, help="Optuna storage URL")
    parser.add_argument("--study", default=None, help="study name")
    args = parser.parse_args(argv)
    payload = run(args.trials, args.model, args.storage, args.study)
    print(f"best trial {payload['trial']} of study {payload['study']}: value "
          f"{payload['value']:.4f}, params {payload['params']}; wrote {ARTIFACTS.best_params}")


if __name__ == "__main__":
    run_main(main)

"""Stage ``train``: fit the configured model, log it to MLflow, register it as @challenger.

Reads artifacts/panel.parquet, graph.npz, areas.parquet, the model's hyperparameters from
configs/models.yaml overlaid with artifacts/best_params.json (when it was tuned for the
same model), and writes artifacts/train_run.json (run id, registered version, metrics).

    python -m training.train [--model gnn] [--actor NAME]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from crimecast.contracts import ARTIFACTS, AreaGraph, Panel
from crimecast.data.panel import target_panel
from crimecast.errors import run_main
from crimecast.io import write_json

READS: tuple[str, ...] = ("panel", "graph", "areas", "best_params")
WRITES: tuple[str, ...] = ("train_run",)


def model_params(model: str, best_params_path: Path | None = None) -> tuple[dict[str, Any], str]:
    """Hyperparameters for ``model``: configs/models.yaml overlaid with the tuned ones in
    ``best_params_path`` when they were tuned for this model. Returns (params, source)."""
    from crimecast.forecast.models import ModelsSettings

    params = ModelsSettings.load().params_for(model)
    path = best_params_path or ARTIFACTS.best_params
    if path.exists():
        best = json.loads(path.read_text())
        if best.get("model") == model and best.get("params"):
            return {**params, **best["params"]}, f"configs/models.yaml + {path.name}"
    return params, "configs/models.yaml"


def run(model: str | None = None, actor: str | None = None,
        best_params_path: Path | None = None) -> dict[str, Any]:
    """Train, log, register; write and return the train_run.json payload."""
    from crimecast.forecast.models import ModelsSettings
    from crimecast.lifecycle.tracking import train_and_register

    model = model or ModelsSettings.load().default_model
    params, source = model_params(model, best_params_path)
    panel, graph = target_panel(Panel.load()), AreaGraph.load()
    result = train_and_register(model, panel, graph, params, actor=actor,
                                extra_tags={"params.source": source})
    payload = {**result.as_dict(), "params_source": source}
    write_json(ARTIFACTS.train_run, payload)
    return payload


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name (default: models.yaml default_model)")
    parser.add_argument("--actor", default=None, help="who trains (default: $USER)")
    args = parser.parse_args(argv)
    payload = run(args.model, args.actor)
    print(f"registered {payload['model_name']} as version {payload['version']} (@challenger), "
          f"run {payload['run_id']}; wrote {ARTIFACTS.train_run}")


if __name__ == "__main__":
    run_main(main)

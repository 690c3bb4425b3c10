"""Stage ``evaluate``: backtest the version that ``train`` registered, and the baselines,
on the same windows.

Reads artifacts/train_run.json (which version to evaluate), the panel and graph; writes
artifacts/evaluation.json (overall metrics per model, the gate's numbers, the challenger's
metrics by group and disparity ratios) and logs an MLflow run.

    python -m training.evaluate [--alias challenger]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from crimecast.contracts import ARTIFACTS, AreaGraph, ContractError, Panel
from crimecast.errors import run_main
from crimecast.io import write_json

READS: tuple[str, ...] = ("train_run", "panel", "graph", "areas")
WRITES: tuple[str, ...] = ("evaluation",)


def run(alias: str | None = None) -> dict[str, Any]:
    """Evaluate the version in train_run.json (or, with ``alias``, the version holding
    it); write and return evaluation.json."""
    from crimecast.lifecycle.evaluation import evaluate

    if alias is None:
        if not ARTIFACTS.train_run.exists():
            raise ContractError(f"{ARTIFACTS.train_run}: missing; run the train stage first")
        version = str(json.loads(ARTIFACTS.train_run.read_text())["version"])
        payload = evaluate(Panel.load(), AreaGraph.load(), version=version)
    else:
        payload = evaluate(Panel.load(), AreaGraph.load(), alias=alias)
    write_json(ARTIFACTS.evaluation, payload)
    return payload


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alias", default=None,
                        help="evaluate the version holding this alias instead of train_run.json's")
    args = parser.parse_args(argv)
    payload = run(args.alias)
    for label, overall in payload["models"].items():
        print(f"{label:>28}: poisson deviance {overall['poisson_deviance']:.4f}, "
              f"PAI at the gate's area share {payload['gate'][label]['pai']:.3f}")
    print(f"wrote {ARTIFACTS.evaluation}")


if __name__ == "__main__":
    run_main(main)

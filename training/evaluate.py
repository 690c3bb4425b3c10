"""Stage ``evaluate``: backtest @challenger and the baselines on the same windows.

Writes artifacts/evaluation.json (overall metrics per model, the gate's numbers, the
challenger's metrics by group and disparity ratios) and logs an MLflow run.

    python -m training.evaluate [--alias challenger]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from crimecast.contracts import AreaGraph, Panel
from crimecast.io import write_json
from crimecast.paths import resolve

EVALUATION = Path("artifacts/evaluation.json")


def run(alias: str = "challenger", output: Path | None = None) -> dict[str, Any]:
    """Evaluate the version holding ``alias``; write and return evaluation.json."""
    from crimecast.registry import evaluate

    payload = evaluate(Panel.load(), AreaGraph.load(), alias=alias)
    write_json(resolve(output or EVALUATION), payload)
    return payload


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alias", default="challenger")
    args = parser.parse_args(argv)
    payload = run(args.alias)
    for label, overall in payload["models"].items():
        print(f"{label:>28}: poisson deviance {overall['poisson_deviance']:.4f}, "
              f"PAI@5% {overall.get('pai@5%', float('nan')):.2f}")
    print(f"wrote {resolve(EVALUATION)}")


if __name__ == "__main__":
    main()

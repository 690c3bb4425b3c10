"""Stage ``evaluate``: backtest the version that ``train`` registered, and the baselines,
on the same windows.

Reads artifacts/train_run.json (which version to evaluate), the panel and graph; writes
artifacts/evaluation.json (metrics per model and target, paired comparisons with 95 % CIs,
ceilings, calibration, the gate's numbers and a preview of its verdict; see
docs/lifecycle.md) and logs an MLflow run.

    python -m training.evaluate [--alias challenger]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from crimecast.contracts import ARTIFACTS, AreaGraph, ContractError, Panel
from crimecast.data.panel import target_panel
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
        payload = evaluate(target_panel(Panel.load()), AreaGraph.load(), version=version)
    else:
        payload = evaluate(target_panel(Panel.load()), AreaGraph.load(), alias=alias)
    write_json(ARTIFACTS.evaluation, payload)
    return payload


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alias", default=None,
                        help="evaluate the version holding this alias instead of train_run.json's")
    args = parser.parse_args(argv)
    payload = run(args.alias)
    policy = payload["policy"]
    print(f"target '{policy['target']}', horizon {policy['horizon']}; paired 95 % CIs "
          f"against {payload['reference']}:")
    for label, scores in payload["gate"].items():
        versus = payload["comparisons"].get(label, {}).get(policy["target"], {})
        change = versus.get("poisson_deviance") or {}
        ci = change.get("relative_ci") or [None, None]
        text = (f", change {change['relative'] * 100:+.2f} % [{ci[0] * 100:+.2f}, "
                f"{ci[1] * 100:+.2f}]" if change.get("relative") is not None
                and None not in ci else "")
        print(f"{label:>36}: deviance {scores['poisson_deviance']:.4f}{text}; PAI at the "
              f"gate's share {scores['pai']:.3f}")
    preview = payload["gate_preview"]
    print(f"gate preview against {preview['against']}: "
          f"{'promote' if preview['promote'] else 'refuse'} ({preview['outcome']})")
    print(f"wrote {ARTIFACTS.evaluation}")


if __name__ == "__main__":
    run_main(main)

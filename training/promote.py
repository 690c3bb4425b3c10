"""Stage ``promote``: the fairness-checked promotion gate for @challenger.

Reads artifacts/evaluation.json (the challenger must be the version evaluated), the panel
and graph; writes artifacts/promotion.json (the audit record of the decision). A refusal
is a decision, not an error: the stage exits 0 either way.

    python -m training.promote [--actor NAME]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from crimecast.contracts import ARTIFACTS, AreaGraph, ContractError, Panel
from crimecast.data.panel import target_panel
from crimecast.errors import run_main
from crimecast.io import write_json

READS: tuple[str, ...] = ("evaluation", "panel", "graph", "areas")
WRITES: tuple[str, ...] = ("promotion",)


def run(actor: str | None = None) -> dict[str, Any]:
    """Run the gate; write and return the decision record."""
    from crimecast.lifecycle.promotion import promote
    from crimecast.lifecycle.registry import resolve_alias

    if not ARTIFACTS.evaluation.exists():
        raise ContractError(f"{ARTIFACTS.evaluation}: missing; run the evaluate stage first")
    evaluation = json.loads(ARTIFACTS.evaluation.read_text())
    record = promote(target_panel(Panel.load()), AreaGraph.load(), actor=actor,
                     evaluation=evaluation)
    # A refusal with no champion may have seeded one from the baseline: say who serves.
    record = {**record, "champion_after": resolve_alias("champion")}
    write_json(ARTIFACTS.promotion, record)
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actor", default=None, help="who decides (default: $USER)")
    args = parser.parse_args(argv)
    record = run(args.actor)
    print(f"{record['decision']}: v{record['challenger_version']} — {record['reason']}")
    print(f"@champion is now {record['champion_after'] and 'v' + record['champion_after']}")
    print(f"wrote {ARTIFACTS.promotion}")


if __name__ == "__main__":
    run_main(main)

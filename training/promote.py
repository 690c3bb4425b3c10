"""Stage ``promote``: the fairness-checked promotion gate for @challenger.

Writes artifacts/promotion.json (the audit record of the decision). A refusal is a
decision, not an error: the stage exits 0 either way.

    python -m training.promote [--actor NAME]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from crimecast.contracts import AreaGraph, Panel
from crimecast.io import write_json
from crimecast.paths import resolve

PROMOTION = Path("artifacts/promotion.json")


def run(actor: str | None = None, output: Path | None = None) -> dict[str, Any]:
    """Run the gate; write and return the decision record."""
    from crimecast.registry import promote, resolve_alias

    record = promote(Panel.load(), AreaGraph.load(), actor=actor)
    # A refusal with no champion may have seeded one from the baseline: say who serves.
    record = {**record, "champion_after": resolve_alias("champion")}
    write_json(resolve(output or PROMOTION), record)
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actor", default=None, help="who decides (default: $USER)")
    args = parser.parse_args(argv)
    record = run(args.actor)
    print(f"{record['decision']}: v{record['challenger_version']} — {record['reason']}")
    print(f"@champion is now {record['champion_after'] and 'v' + record['champion_after']}")
    print(f"wrote {resolve(PROMOTION)}")


if __name__ == "__main__":
    main()

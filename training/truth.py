"""Stage ``truth``: the source's true intensity → artifacts/truth.parquet.

Only a synthetic city knows the truth (``data/truth.parquet``, written by its fetch); for
real sources the stage writes an empty table with the contract columns, so the pipeline
has the same outputs whatever the source.

    python -m training.truth
"""

from __future__ import annotations

import argparse

import pandas as pd

from crimecast.contracts import ARTIFACTS, ContractError
from crimecast.io import write_parquet
from crimecast.sources import DataSettings, get_source

TRUTH_COLUMNS: tuple[str, ...] = ("area_id", "week", "category", "intensity")


def run() -> pd.DataFrame:
    """Write truth.parquet (empty for sources without a truth); return it."""
    settings = DataSettings.load()
    source = get_source(settings)
    read_truth = getattr(source, "read_truth", None)
    if read_truth is None:
        truth = pd.DataFrame({"area_id": pd.Series(dtype=str),
                              "week": pd.Series(dtype="datetime64[ns]"),
                              "category": pd.Series(dtype=str),
                              "intensity": pd.Series(dtype=float)})
    else:
        truth = read_truth(settings.raw_path())
        missing = [c for c in TRUTH_COLUMNS if c not in truth.columns]
        if missing:
            raise ContractError(f"{settings.raw_path()}: truth lacks column(s) {missing}")
    write_parquet(ARTIFACTS.truth, truth)
    return truth


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    truth = run()
    print(f"truth: {len(truth)} rows" + ("" if len(truth) else " (this source has no known truth)"))
    print(f"wrote {ARTIFACTS.truth}")


if __name__ == "__main__":
    main()

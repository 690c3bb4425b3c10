"""Pipeline stage ``areas``: tract polygons + demographics in data/ →
artifacts/areas.parquet (GeoParquet with group labels). Usage: ``python -m training.areas``."""

from __future__ import annotations

import argparse

from crimecast.contracts import ARTIFACTS
from crimecast.data.areas import run_areas
from crimecast.data.settings import DataSettings
from crimecast.errors import run_main

READS: tuple[str, ...] = ()  # boundaries and census tables in data/
WRITES: tuple[str, ...] = ("areas",)


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    settings = DataSettings.load()
    areas = run_areas(settings)
    counts = areas["group"].value_counts().to_dict()
    print(f"areas ({settings.source}): {len(areas)} areas, groups by '{settings.groups.rule}': "
          f"{counts}, {int(areas['low_population'].sum())} below the population floor")
    print(f"  wrote {ARTIFACTS.areas}")


if __name__ == "__main__":
    run_main(main)

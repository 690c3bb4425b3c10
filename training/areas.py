"""Pipeline stage ``areas``: area polygons (or centroids) + demographics in data/ →
artifacts/areas.parquet (GeoParquet with land area and group labels).
Usage: ``python -m training.areas``.

Prints the group counts and any guess it made (the share scale when ``share_scale`` is
unset, cells derived from centroids); stops, naming the key, when an area has no land
area, so nothing fails later in train."""

from __future__ import annotations

import argparse

from crimecast.contracts import ARTIFACTS
from crimecast.data.areas import run_areas
from crimecast.data.settings import DataSettings
from crimecast.data.units import check_recorded_unit
from crimecast.errors import run_main

READS: tuple[str, ...] = ()  # boundaries and census tables in data/
WRITES: tuple[str, ...] = ("areas",)


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    settings = DataSettings.load()
    check_recorded_unit(settings.units)
    notes: list[str] = []
    areas = run_areas(settings, notes=notes)
    for note in notes:
        print(note)
    counts = ", ".join(f"{group} {n}" for group, n in areas["group"].value_counts().items())
    unit = f", unit {settings.units.tag}" if settings.units.kind == "h3" else ""
    print(f"areas ({settings.source}{unit}): {len(areas)} "
          f"{settings.area_label}s of "
          f"{settings.city.name}, groups by '{settings.groups.rule}': {counts}; "
          f"{int(areas['low_population'].sum())} below the population floor, land area "
          f"{areas['land_area_km2'].sum():.1f} km²")
    print(f"  wrote {ARTIFACTS.areas}")


if __name__ == "__main__":
    run_main(main)

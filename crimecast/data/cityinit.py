"""Sniff a new city's three files and propose its ``configs/data.yaml``.

:func:`propose_city` reads an incidents CSV, an areas file (GeoJSON polygons or a CSV of
centroids) and a demographics CSV, and guesses, from column names and value types, which
column holds each field the ``csv`` source needs; :func:`render_data_yaml` writes the
guesses as a commented ``configs/data.yaml``. What it could not guess is listed in
``CityProposal.unguessed`` (and marked ``# TODO`` in the file), never silently filled.

Guesses, in order of evidence:

- the record id: a column whose values are unique, preferring id-like names;
- the timestamp: the column that parses as dates for the most rows, preferring date/time
  names; text ending in ``Z`` or ``+00:00`` means UTC (``csv.timestamps: utc``);
- longitude / latitude: by name, else by range (|lat| <= 90 < |lon| for the Americas);
- the incidents' own area label: the column whose values match the areas' ids best
  (``csv.columns.area_id``, at least 80 % of rows);
- the offense code or label: a low-cardinality column with an offense-like name; every
  distinct label found goes into the category map (one category per label when there are
  at most :data:`MAX_LABEL_CATEGORIES`, else one ``all`` category listing them, for the
  user to group), with its record count;
- the areas' id: the column whose values best match the demographics' id column;
  centroids get ``centroids.cells: voronoi``, since a CSV of points has no land area;
- demographic columns by name (population, black, white, asian, hispanic/latino, income,
  poverty); the share scale from the values (all <= 1: fractions);
- the time zone from the incidents' median coordinates (``tzfpy``); the city's name from
  ``name`` or the folder of the incidents file, the unit label from the area id column's
  name (neighbourhood, district, beat, ward, tract, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from crimecast.data.labels import normalise_label, safe_label
from crimecast.data.settings import DataSettings, PhiladelphiaSettings

MAX_LABEL_CATEGORIES = 12
_SNIFF_ROWS = 200_000  # enough rows to see every common label; big files stay quick

_ID_NAMES = re.compile(r"(^id$|_id$|^id_|number|^num|case|incident|record|objectid|report|event|key)", re.IGNORECASE)
_TIME_NAMES = re.compile(r"(date|time|occur|report|dispatch|when|stamp|utc|created)", re.IGNORECASE)
_LON_NAMES = re.compile(r"^(lon|lng|long|longitude|x|point_x|.*_lon|.*_lng|.*longitude.*|lon_.*)$", re.IGNORECASE)
_LAT_NAMES = re.compile(r"^(lat|latitude|y|point_y|.*_lat|.*latitude.*|lat_.*)$", re.IGNORECASE)
_CODE_NAMES = re.compile(r"(offen[cs]e|crime|call|type|categor|code|ucr|nature|description|class|incident_type)", re.IGNORECASE)
_AREA_NAMES = re.compile(r"(nbhd|neighbo|hood|district|beat|ward|tract|geoid|zone|precinct|sector|area|block|name|id)", re.IGNORECASE)
_UNIT_WORDS: tuple[tuple[str, str], ...] = (
    ("nbhd", "neighbourhood"), ("neighbo", "neighbourhood"), ("hood", "neighbourhood"),
    ("district", "district"), ("beat", "beat"), ("ward", "ward"), ("tract", "tract"),
    ("geoid", "tract"), ("precinct", "precinct"), ("sector", "sector"), ("zone", "zone"),
    ("block", "block group"),
)
_DEMOGRAPHIC_NAMES: dict[str, re.Pattern[str]] = {
    "population": re.compile(r"(pop|resident|total_persons|inhabitants)", re.IGNORECASE),
    "pct_black": re.compile(r"black|african", re.IGNORECASE),
    "pct_white": re.compile(r"white", re.IGNORECASE),
    "pct_asian": re.compile(r"asian", re.IGNORECASE),
    "pct_hispanic": re.compile(r"hispanic|latin", re.IGNORECASE),
    "median_income": re.compile(r"income", re.IGNORECASE),
    "pct_poverty": re.compile(r"povert", re.IGNORECASE),
}
_SHARE_NAMES = re.compile(r"(pct|share|percent|prop|frac|rate|%)", re.IGNORECASE)
_SHARE_FIELDS = ("pct_black", "pct_white", "pct_asian", "pct_hispanic", "pct_poverty")


@dataclass
class CityProposal:
    """What :func:`propose_city` found: the ``csv`` settings (``columns``,
    ``area_columns``, ``demographic_columns``), the labels with their record counts, the
    guessed ``timezone``, ``timestamps``, ``share_scale``, city words, and every field it
    could not guess (``unguessed``: (config key, why) pairs)."""

    incidents: str
    areas: str
    demographics: str
    columns: dict[str, str | None]
    area_columns: dict[str, str | None]
    demographic_columns: dict[str, str | None]
    labels: list[tuple[str, int, list[str]]]  # (label, records, other spellings)
    label_column: str | None
    timezone: str | None
    timestamps: str
    share_scale: str | None
    centroids: bool
    city_name: str
    unit_label: str
    rows: int
    notes: list[str] = field(default_factory=list)
    unguessed: list[tuple[str, str]] = field(default_factory=list)


def _read_table(path: Path, nrows: int | None = None) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], nrows=nrows)


def _numeric_share(values: pd.Series) -> float:
    present = values.dropna()
    return float(pd.to_numeric(present, errors="coerce").notna().mean()) if len(present) else 0.0


def _pick(scores: dict[str, float], minimum: float = 0.0) -> str | None:
    best = max(scores.items(), key=lambda kv: kv[1], default=(None, -1.0))
    return best[0] if best[1] > minimum else None


def _id_column(frame: pd.DataFrame, exclude: set[str]) -> str | None:
    scores = {}
    for column in frame.columns:
        if column in exclude:
            continue
        values = frame[column].dropna()
        if len(values) < 0.95 * len(frame) or not values.is_unique:
            continue
        scores[column] = 2.0 if _ID_NAMES.search(column) else 1.0
    return _pick(scores)


def _time_column(frame: pd.DataFrame) -> tuple[str | None, bool]:
    """(column, whether its text carries a UTC/offset marker)."""
    scores: dict[str, float] = {}
    for column in frame.columns:
        values = frame[column].dropna().astype(str).head(2000)
        if values.empty or _numeric_share(values) > 0.9:
            continue
        parsed = pd.to_datetime(values, format="ISO8601", errors="coerce", utc=True)
        share = float(parsed.notna().mean())
        if share >= 0.9:
            scores[column] = share + (0.5 if _TIME_NAMES.search(column) else 0.0)
    column = _pick(scores)
    if column is None:
        return None, False
    marked = frame[column].dropna().astype(str).head(2000).str.contains(
        r"(?:Z|[+-]00:?00)$", regex=True)
    return column, bool(marked.mean() > 0.9)


def _coordinate_columns(frame: pd.DataFrame, exclude: set[str]) -> tuple[str | None, str | None]:
    numeric = {}
    for column in frame.columns:
        if column in exclude:
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.notna().mean() >= 0.5:
            numeric[column] = values
    lon = next((c for c in numeric if _LON_NAMES.match(c)), None)
    lat = next((c for c in numeric if _LAT_NAMES.match(c) and c != lon), None)
    if lon is None or lat is None:  # by range: latitudes within ±90, longitudes beyond
        in_lat = [c for c, v in numeric.items() if v.abs().max() <= 90 and v.std() > 0]
        beyond = [c for c, v in numeric.items() if 90 < v.abs().max() <= 180]
        lat = lat or (in_lat[0] if in_lat else None)
        lon = lon or (beyond[0] if beyond else None)
    return lon, lat


def _match_share(values: pd.Series, ids: set[str]) -> float:
    present = values.dropna()
    if present.empty:
        return 0.0
    uniques = pd.Series(present.unique())
    hit = uniques.map(lambda v: normalise_label(v) in ids)
    counts = present.value_counts()
    return float(counts[uniques[hit.to_numpy()]].sum() / len(present)) if hit.any() else 0.0


def _area_label_column(frame: pd.DataFrame, area_ids: set[str], exclude: set[str]) -> str | None:
    scores = {c: _match_share(frame[c], area_ids) for c in frame.columns if c not in exclude}
    return _pick(scores, minimum=0.8)


def _label_column(frame: pd.DataFrame, exclude: set[str]) -> str | None:
    scores: dict[str, float] = {}
    n = len(frame)
    for column in frame.columns:
        if column in exclude:
            continue
        values = frame[column].dropna()
        if values.empty:
            continue
        distinct = values.map(normalise_label).nunique()
        # a code column has few distinct values, repeated often
        if distinct > 1000 or distinct > max(20, 0.2 * n):
            continue
        scores[column] = (2.0 if _CODE_NAMES.search(column) else 1.0) - distinct / (n + 1)
    return _pick(scores)


def _labels(values: pd.Series) -> list[tuple[str, int, list[str]]]:
    """Distinct labels (normalised), most frequent first: (most common spelling, records,
    other spellings). Values that look like free text are shown redacted."""
    present = values.dropna()
    counts = present.value_counts()
    grouped: dict[str, list[tuple[str, int]]] = {}
    for spelling, count in counts.items():
        grouped.setdefault(normalise_label(spelling), []).append((str(spelling), int(count)))
    out = []
    for spellings in grouped.values():
        spellings.sort(key=lambda sc: -sc[1])
        out.append((spellings[0][0], sum(c for _, c in spellings), [s for s, _ in spellings[1:]]))
    out.sort(key=lambda item: -item[1])
    return out


def _unit_label(column: str | None) -> str | None:
    for fragment, word in _UNIT_WORDS:
        if column and fragment in column.lower():
            return word
    return None


def _guess_timezone(lon: pd.Series, lat: pd.Series) -> str | None:
    try:
        from tzfpy import get_tz
    except ImportError:  # optional at run time: the proposal then asks for it
        return None
    lon, lat = pd.to_numeric(lon, errors="coerce"), pd.to_numeric(lat, errors="coerce")
    if lon.notna().sum() == 0:
        return None
    zone = get_tz(float(lon.median()), float(lat.median()))
    return zone or None


def _relative(path: Path, home: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(home)) if path.is_relative_to(home) else str(path)


def propose_city(incidents: Path, areas: Path, demographics: Path, home: Path,
                 name: str | None = None, unit_label: str | None = None) -> CityProposal:
    """Sniff the three files (see the module docstring) and return the proposal; paths
    in it are relative to ``home`` when inside it."""
    import geopandas as gpd

    unguessed: list[tuple[str, str]] = []
    notes: list[str] = []
    raw = _read_table(incidents, nrows=_SNIFF_ROWS)

    # Areas first: their ids tell which incidents column is an area label.
    is_geojson = areas.suffix.lower() in (".geojson", ".json") or areas.name.endswith(
        (".geojson.gz", ".json.gz"))
    demo = _read_table(demographics)
    if is_geojson:
        area_frame = pd.DataFrame(gpd.read_file(areas).drop(columns="geometry"))
        area_frame = area_frame.astype(str).where(area_frame.notna())
        area_lon = area_lat = None
    else:
        area_frame = _read_table(areas)
        area_lon, area_lat = _coordinate_columns(area_frame, set())
        if area_lon is None or area_lat is None:
            unguessed.append(("csv.area_columns.lon / lat", f"no longitude/latitude columns in {areas.name}"))
    demo_ids = {c: {normalise_label(v) for v in demo[c].dropna()} for c in demo.columns}
    area_scores = {}
    for column in area_frame.columns:
        if column in (area_lon, area_lat):
            continue
        values = area_frame[column].dropna()
        if len(values) == 0 or not values.is_unique:
            continue
        best_demo = max((_match_share(values, ids) for ids in demo_ids.values()), default=0.0)
        area_scores[column] = best_demo + (0.1 if _AREA_NAMES.search(column) else 0.0)
    area_id = _pick(area_scores)
    if area_id is None:
        unguessed.append(("csv.area_columns.area_id", f"no unique id column in {areas.name}"))
        area_ids: set[str] = set()
    else:
        area_ids = {normalise_label(v) for v in area_frame[area_id].dropna()}
    aland = next((c for c in area_frame.columns if re.search(r"aland|land_?(m2|area)|area_?m2", c, re.IGNORECASE)), None)

    demo_id = _pick({c: _match_share(demo[c], area_ids) for c in demo.columns}, minimum=0.5)
    if demo_id is None:
        unguessed.append(("csv.demographic_columns.area_id",
                          f"no column of {demographics.name} matches the areas' ids"))
    demographic_columns: dict[str, str | None] = {"area_id": demo_id}
    for field_name, pattern in _DEMOGRAPHIC_NAMES.items():
        scores = {}
        for c in demo.columns:
            if c == demo_id or not pattern.search(c) or _numeric_share(demo[c]) <= 0.8:
                continue
            if field_name in _SHARE_FIELDS:  # a share, not the count beside it
                values = pd.to_numeric(demo[c], errors="coerce")
                if values.max() > 100 or values.min() < 0:
                    continue
                scores[c] = 2.0 if _SHARE_NAMES.search(c) else 1.0
            else:
                scores[c] = 1.0
        column = _pick(scores)
        demographic_columns[field_name] = column
        if column is None:
            unguessed.append((f"csv.demographic_columns.{field_name}",
                              f"no {field_name.removeprefix('pct_')} column found (left null: unknown)"))
    shares = [pd.to_numeric(demo[c], errors="coerce") for f, c in demographic_columns.items()
              if f in _SHARE_FIELDS and c]
    share_scale = None
    if shares:
        top = max(float(s.max()) for s in shares if s.notna().any())
        share_scale = "fraction" if top <= 1.0 else "percent"

    # Incidents.
    time_column, utc_marked = _time_column(raw)
    if time_column is None:
        unguessed.append(("csv.columns.occurred_local", "no column parses as timestamps"))
    source_key = _id_column(raw, {time_column} if time_column else set())
    if source_key is None:
        unguessed.append(("csv.columns.source_key", "no column with a unique value per record"))
    taken = {c for c in (time_column, source_key) if c}
    lon, lat = _coordinate_columns(raw, taken)
    taken |= {c for c in (lon, lat) if c}
    own_area = _area_label_column(raw, area_ids, taken) if area_ids else None
    if own_area:
        taken.add(own_area)
        notes.append(f"incidents carry their own area label in '{own_area}': used instead "
                     "of the point-in-area join (csv.columns.area_id)")
    if (lon is None or lat is None) and own_area is None:
        unguessed.append(("csv.columns.lon / lat", "no longitude/latitude columns in the incidents"))
    label_column = _label_column(raw, taken)
    labels = _labels(raw[label_column]) if label_column else []
    free_text = [item for item in labels if _shown(item[0]) != item[0]]
    if free_text:
        labels = [item for item in labels if item not in free_text]
        notes.append(f"{sum(c for _, c, _ in free_text):,} records of '{label_column}' hold "
                     f"free text ({len(free_text)} distinct values), left out of the map: "
                     "ingest quarantines them, redacted")
    if label_column is None:
        unguessed.append(("csv.columns.offense_code", "no column of offense codes or labels"))
    elif len(labels) > MAX_LABEL_CATEGORIES:
        unguessed.append(("categories", (f"{len(labels)} distinct labels in '{label_column}': "
                          "group them under your categories")))
    timezone = _guess_timezone(raw[lon], raw[lat]) if lon and lat else None
    if timezone is None:
        unguessed.append(("timezone", "no coordinates to locate the city"))
    if time_column and not utc_marked:
        notes.append(f"timestamps in '{time_column}' carry no offset: read as local time of "
                     f"{timezone or 'the city'} (set csv.timestamps: utc if they are UTC)")
    if not is_geojson and not aland:
        notes.append("areas are centroids without land area: cells from Voronoi polygons "
                     "(centroids.cells: voronoi; set csv.outline to clip them to the city)")
    guessed_unit = unit_label or _unit_label(area_id) or _unit_label(own_area)
    if guessed_unit is None:
        unguessed.append(("city.unit_label", ("the area id column's name says nothing; "
                          "'area' used")))
    if name is None:
        unguessed.append(("city.name", f"named after the folder '{incidents.resolve().parent.name}'"))
    unguessed.append(("city.source", "who published the data (--source)"))
    unguessed.append(("city.licence", "the terms the data are published under (--licence)"))
    if share_scale is None:
        unguessed.append(("share_scale", "no demographic shares found"))
    return CityProposal(
        incidents=_relative(incidents, home), areas=_relative(areas, home),
        demographics=_relative(demographics, home),
        columns={"source_key": source_key, "occurred_local": time_column,
                 "offense_code": label_column, "lon": lon, "lat": lat, "category": None,
                 "area_id": own_area},
        area_columns={"area_id": area_id, "aland_m2": aland, "lon": area_lon, "lat": area_lat},
        demographic_columns=demographic_columns, labels=labels, label_column=label_column,
        timezone=timezone, timestamps="utc" if utc_marked else "local",
        share_scale=share_scale, centroids=not is_geojson, rows=len(raw),
        city_name=name or incidents.resolve().parent.name.replace("_", " ").title(),
        unit_label=guessed_unit or "area", notes=notes, unguessed=unguessed)


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", normalise_label(label)).strip("_") or "category"


def _yaml_text(value: Any) -> str:
    """A YAML scalar: null, or a double-quoted string."""
    if value is None:
        return "null"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _shown(label: str) -> str:
    return str(safe_label(pd.Series([label])).iloc[0])


def render_data_yaml(proposal: CityProposal, source: str = "", licence: str = "") -> str:
    """The proposal as a commented ``configs/data.yaml`` (every key the csv source reads,
    the rest at their defaults, so every key DVC's params name is present); ``# TODO``
    marks what was not guessed."""
    todo = {key for key, _ in proposal.unguessed}

    def mark(key: str) -> str:
        return "  # TODO: not guessed" if any(key == t or t.startswith(key + " ") for t in todo) else ""

    lines = [
        f"# configs/data.yaml proposed by `crimecast city init` for {proposal.city_name}",
        (f"# from {proposal.incidents} ({proposal.rows:,} records read), {proposal.areas}, "
        f"{proposal.demographics}."),
        "# Check every guess, then fill in the category map below. Keys are documented in",
        "# docs/data.md; env overrides: CRIMECAST_DATA__<KEY>.",
        "",
        "source: csv",
        "",
        "city:                         # words the report, CLI and API use for this city",
        f"  name: {_yaml_text(proposal.city_name)}{mark('city.name')}",
        f"  unit_label: {_yaml_text(proposal.unit_label)}   # what one area is called{mark('city.unit_label')}",
        f"  source: {_yaml_text(source or 'TODO: who published the data')}",
        f"  licence: {_yaml_text(licence or 'TODO: the terms the data are published under')}",
        '  contact: ""',
        "raw_dir: data",
        f"timezone: {proposal.timezone or 'America/New_York'}"
        + ("   # guessed from the incidents' coordinates" if proposal.timezone else mark("timezone")),
        "salt: crimecast-2026-public-salt   # set CRIMECAST_DATA__SALT to a private value",
        "future_tolerance_days: 1",
        "max_quarantine_share: 0.5         # ingest fails above this share of bad rows",
        f"share_scale: {proposal.share_scale or 'null'}"
        + ("   # detected from the demographic values" if proposal.share_scale else ""),
        "",
    ]
    lines += ["# Categories recorded mostly where police look (narcotics, DUI, prostitution,",
              "# weapons possession, ...): kept in the panel, never learnt by the patrol",
              "# model. Put such labels under a category of their own and name it here.",
              "enforcement_categories: []", ""]
    lines += _category_lines(proposal)
    columns = proposal.columns
    lines += [
        "",
        "csv:",
        f"  incidents: {_yaml_text(proposal.incidents)}",
        f"  areas: {_yaml_text(proposal.areas)}",
        f"  demographics: {_yaml_text(proposal.demographics)}",
        "  columns:                    # incidents file column of each field",
    ]
    for key in ("source_key", "occurred_local", "offense_code", "lon", "lat", "category", "area_id"):
        lines.append(f"    {key}: {_yaml_text(columns[key])}{mark('csv.columns.' + key)}")
    lines.append("  area_columns:               # areas file")
    for key, value in proposal.area_columns.items():
        lines.append(f"    {key}: {_yaml_text(value)}{mark('csv.area_columns.' + key)}")
    lines.append("  demographic_columns:        # demographics file (null: not available)")
    for key, value in proposal.demographic_columns.items():
        lines.append(f"    {key}: {_yaml_text(value)}{mark('csv.demographic_columns.' + key)}")
    lines += [
        "  na_sentinels: [-666666666]  # values read as unknown",
        f"  timestamps: {proposal.timestamps}"
        + ("            # the timestamps end in Z / +00:00" if proposal.timestamps == "utc"
           else "          # local | utc: what timestamps without an offset are"),
        '  outline: ""                 # optional GeoJSON outline to clip centroid cells to',
        "",
        "centroids:                    # areas given as points: cells and land area",
        "  cells: voronoi              # voronoi | none (then aland_m2 is required)",
        "  hull_buffer_m: null         # null = median distance between neighbouring centroids",
        "",
        "synthetic: {}                 # settings of source: synthetic (unused here)",
        "philadelphia:                 # settings of source: philadelphia (unused here)",
        *(f"  {key}: {value}" for key, value in PhiladelphiaSettings().model_dump().items()),
        "groups:",
        "  rule: majority              # majority | income_tercile",
        "  majority_threshold_pct: 50",
        "  population_floor: 100",
        "quality:                      # outage detector",
        "  window_weeks: 4",
        "  day_ratio: 0.35",
        "  week_ratio: 0.7",
        "  alpha: 0.0001",
        "graph:",
        "  method: auto                # auto | h3 | queen | knn",
        "  knn_k: 6",
        "  tolerance_deg: 1.0e-6",
        "units:                        # spatial unit: this city's own areas, or H3 cells",
        "  kind: tract                 # tract (the areas file's areas) | h3 | centroid",
        "  resolution: 9               # H3 resolution when kind is h3",
        "  group_from: shares          # h3: shares | tract",
        "",
    ]
    text = "\n".join(lines)
    import yaml

    missing = set(DataSettings.model_fields) - set(yaml.safe_load(text))
    if missing:  # dvc.yaml params name every top-level key: none may be left out
        raise AssertionError(f"proposal lacks keys {sorted(missing)}")
    return text


def _category_lines(proposal: CityProposal) -> list[str]:
    head = ["# Category name -> the codes or labels of csv.columns.offense_code in it. Every",
            f"# distinct label of '{proposal.label_column}' is listed with its record count."]
    if not proposal.labels:
        return head + ["categories:  # TODO: no labels found", "  all: [TODO]"]
    if len(proposal.labels) <= MAX_LABEL_CATEGORIES:
        head += ["# Proposed: one category per label. Merge labels that belong together",
                 "# (a category is a list), rename categories as you like.",
                 "categories:"]
        body = []
        for label, count, others in proposal.labels:
            spellings = ", ".join(_yaml_text(s) for s in [label, *others])
            body.append(f"  {_slug(label)}: [{spellings}]   # {count:,} records")
        return head + body
    head += ["# TODO: too many labels to propose categories; move each label under a",
             "# category of your own (e.g. violent / property / other).",
             "categories:", "  all:"]
    return head + [f"    - {_yaml_text(label)}   # {count:,} records"
                   + (f"; also spelt {', '.join(others)}" if others else "")
                   for label, count, others in proposal.labels]

"""Privacy scan: look for data that must never leave ingest or appear in a public report.

:func:`scan_for_leaks` reads text, CSV (also gzipped), JSON/JSONL, HTML, Markdown and
parquet files (folders are searched recursively) and reports:

- ``address``: street addresses, both Philadelphia's block form ("400 BLOCK W INDIANA AV")
  and ordinary forms ("1234 Market St", "12 N 5th Street");
- ``source_key``: any of the given raw record ids (e.g. objectid / dc_key values), matched
  as whole tokens; keys shorter than ``min_key_length`` are ignored, since short numbers
  occur everywhere, and bare JSON numbers are not matched (they are statistics; see
  :func:`_scan_json`);
- ``secret``: API-key-like strings (``api_key=...``, bearer tokens, AWS/GitHub/Slack keys,
  private key blocks, passwords inside URLs);
- in GeoJSON map exports (``*.geojson``, public at every unit and most sensitive at
  micro-places such as H3 cells, where one cell may hold a single address):
  ``incident_point`` for any point geometry (maps publish areas, never incident
  locations) and ``small_count`` for a count-like property (``count``, ``incidents``,
  ``crimes``, ...) holding a number below the floor of 5 instead of the text "<5".

Each :class:`Finding` names the file and where in it, with a masked excerpt so the list of
findings can be shown without repeating the leak.
"""

from __future__ import annotations

import gzip
import html
import json
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_STREET_SUFFIX = (r"(?:ST|STREET|AV|AVE|AVENUE|RD|ROAD|BLVD|BOULEVARD|DR|DRIVE|LN|LANE|PL|PLACE|"
                  r"CT|COURT|WAY|PKWY|PARKWAY|TER|TERRACE|HWY|HIGHWAY|PIKE|SQ|SQUARE|CIR|CIRCLE)")
ADDRESS_PATTERNS: tuple[re.Pattern[str], ...] = (
    # "400 BLOCK W INDIANA AV": the police blotter form
    re.compile(r"\b\d{1,6}\s+BLOCK\s+(?:OF\s+)?(?:[NSEW]\.?\s+)?[A-Z0-9][A-Z0-9' .-]{1,40}?\s"
               + _STREET_SUFFIX + r"\b", re.IGNORECASE),
    # "1234 Market St", "12 N 5th Street", "77 Old York Road"
    re.compile(r"\b\d{1,6}\s+(?:[NSEW]\.?\s+)?(?:[A-Za-z][A-Za-z'-]+|\d{1,3}(?:st|nd|rd|th))"
               r"(?:\s+[A-Za-z][A-Za-z'-]+){0,3}\s+" + _STREET_SUFFIX + r"\b\.?", re.IGNORECASE),
)
SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\b(?:api[_-]?key|apikey|secret|token|password|passwd|access[_-]?key)"
               r"\b[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9_\-./+]{8,}", re.IGNORECASE),
    re.compile(r"\bbearer\s+[A-Za-z0-9\-._~+/]{20,}=*", re.IGNORECASE),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@\"'\x00]+:[^/\s:@\"'\x00]+@"),  # user:password@host
)
# One alternation of every pattern: a single pass finds the few values worth a closer look.
ANY_LEAK = re.compile("|".join(
    ("(?i:" if p.flags & re.IGNORECASE else "(?:") + p.pattern + ")"
    for p in ADDRESS_PATTERNS + SECRET_PATTERNS))
_TOKEN = re.compile(r"[A-Za-z0-9_\-]+(?:\.[0-9]+)?")
_TEXT_SUFFIXES = {".txt", ".md", ".csv", ".tsv", ".json", ".jsonl", ".html", ".htm", ".xml",
                  ".yaml", ".yml", ".log", ".svg", ".js", ".css", ".geojson"}
# Property names of a GeoJSON feature that hold a count of incidents.
_COUNT_PROPERTY = re.compile(r"(?:^|_)(?:count|counts|incidents|crimes|recorded)(?:_|$)",
                             re.IGNORECASE)
SMALL_COUNT_FLOOR = 5


@dataclass(frozen=True)
class Finding:
    """One suspected leak: the file, where in it (``line 12`` or ``column x``), the kind
    (``address``/``source_key``/``secret``) and a masked excerpt."""

    path: Path
    location: str
    kind: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.path} ({self.location}): {self.kind}: {self.excerpt}"


def mask(text: str) -> str:
    """Keep the first 4 characters and the length, so findings do not repeat the leak."""
    return f"{text[:4]}… ({len(text)} chars)" if len(text) > 4 else "…"


def _normal_key(token: str) -> str:
    # "201625002668.00000000" (a dc_key printed as a float) is the key 201625002668
    return re.sub(r"\.0+$", "", token.strip())


def scan_text(text: str, source_keys: Collection[str] = frozenset()) -> list[tuple[str, str]]:
    """``(kind, matched text)`` for every suspected leak in ``text``."""
    found: list[tuple[str, str]] = []
    for pattern in ADDRESS_PATTERNS:
        found += [("address", m.group(0)) for m in pattern.finditer(text)]
    for pattern in SECRET_PATTERNS:
        found += [("secret", m.group(0)) for m in pattern.finditer(text)]
    if source_keys:
        found += [("source_key", m.group(0)) for m in _TOKEN.finditer(text)
                  if _normal_key(m.group(0)) in source_keys]
    return found


def _iter_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    for path in map(Path, paths):
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        elif path.exists():
            yield path
        else:
            raise FileNotFoundError(f"{path}: no such file or folder to scan")


def _read_text(path: Path) -> str | None:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
        inner = Path(path.stem).suffix.lower()
    else:
        inner = path.suffix.lower()
    if inner not in _TEXT_SUFFIXES and b"\0" in data[:4096]:
        return None  # binary we cannot read as text
    text = data.decode("utf-8", errors="replace")
    return html.unescape(text) if inner in {".html", ".htm", ".xml", ".svg"} else text


def _scan_parquet(path: Path, key_set: Any, limit: int) -> list[Finding]:
    """String and integer columns of a parquet file, on their distinct values, with Arrow
    compute (RE2 regex and hash lookups in C): 1.5 M hex ids take about a second.
    ``key_set``: the raw record ids as an Arrow string array, or None."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    findings: list[Finding] = []
    table = pq.read_table(path)
    for name in table.column_names:
        kind_of = table.schema.field(name).type
        if pa.types.is_dictionary(kind_of):
            kind_of = kind_of.value_type
        textual = pa.types.is_string(kind_of) or pa.types.is_large_string(kind_of)
        if not (textual or pa.types.is_integer(kind_of)):
            continue  # floats, dates, booleans and WKB geometry hold no addresses or id tokens
        values = pc.unique(table.column(name).combine_chunks().cast(pa.string())).drop_null()
        if textual:
            suspicious = pc.filter(values, pc.match_substring_regex(values, ANY_LEAK.pattern))
            for value in suspicious.to_pylist()[:limit]:
                findings += [Finding(path, f"column {name}", kind, mask(text))
                             for kind, text in scan_text(value)]
        if key_set is not None:
            normal = pc.replace_substring_regex(values, r"\.0+$", "")
            hits = pc.filter(values, pc.is_in(normal, value_set=key_set))
            findings += [Finding(path, f"column {name}", "source_key", mask(v))
                         for v in hits.to_pylist()[:limit]]
    return findings[:limit]


def _scan_json(path: Path, keys: Collection[str], limit: int) -> list[Finding]:
    """JSON: every string (keys and values) is scanned; bare numbers only for addresses and
    secrets, never for record ids, since a JSON number is a statistic (a count of 430901
    rows must not read as objectid 430901)."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except json.JSONDecodeError:
        text = _read_text(path) or ""
        return [Finding(path, f"line {n}", kind, mask(match))
                for n, line in enumerate(text.splitlines(), start=1)
                for kind, match in scan_text(line, keys)][:limit]
    findings: list[Finding] = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                # "api_key": "..." is a secret only when key and value are read together
                pair = f"{key}: {value}" if isinstance(value, str) else str(key)
                findings.extend(Finding(path, where or "top", kind, mask(match))
                                for kind, match in scan_text(pair, keys))
                if not isinstance(value, str):
                    walk(value, f"{where}.{key}" if where else str(key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")
        elif isinstance(node, str):
            findings.extend(Finding(path, where or "top", kind, mask(match))
                            for kind, match in scan_text(node, keys))

    walk(payload, "")
    return findings[:limit]


def _scan_geojson(path: Path, limit: int, floor: int = SMALL_COUNT_FLOOR) -> list[Finding]:
    """Point geometries and count properties below ``floor`` in a GeoJSON export."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except json.JSONDecodeError:
        return []
    features = payload.get("features", []) if isinstance(payload, dict) else []
    findings: list[Finding] = []
    for i, feature in enumerate(features):
        if not isinstance(feature, dict):
            continue
        geometry = feature.get("geometry") or {}
        kinds = [geometry.get("type")] + [g.get("type") for g in
                                          geometry.get("geometries", []) if isinstance(g, dict)]
        if {"Point", "MultiPoint"} & set(kinds):
            findings.append(Finding(path, f"features[{i}].geometry", "incident_point",
                                    mask(json.dumps(geometry.get("coordinates")))))
        for key, value in (feature.get("properties") or {}).items():
            if (_COUNT_PROPERTY.search(str(key)) and isinstance(value, int | float)
                    and not isinstance(value, bool) and value < floor):
                findings.append(Finding(path, f"features[{i}].properties.{key}",
                                        "small_count", f"a number below {floor}"))
        if len(findings) >= limit:
            break
    return findings[:limit]


def scan_for_leaks(paths: Iterable[str | Path], source_keys: Collection[str] = (),
                   min_key_length: int = 6, limit_per_file: int = 100) -> list[Finding]:
    """Scan files and folders for addresses, raw source keys and secrets, and GeoJSON
    exports for incident points and small counts.

    ``paths``: files or folders (searched recursively). ``source_keys``: raw record ids
    that must not appear (e.g. the objectids of the raw snapshot); keys shorter than
    ``min_key_length`` are skipped. Returns findings, at most ``limit_per_file`` per file.
    """
    keys = {_normal_key(k) if "." in k else k for k in map(str, source_keys)}
    keys = {k for k in keys if len(k) >= min_key_length}
    findings: list[Finding] = []
    key_array = None
    for path in _iter_files(paths):
        if path.suffix.lower() == ".parquet":
            if keys and key_array is None:
                import pyarrow as pa

                key_array = pa.array(list(keys), type=pa.string())
            findings += _scan_parquet(path, key_array, limit_per_file)
            continue
        if path.suffix.lower() in (".json", ".geojson"):
            findings += _scan_json(path, keys, limit_per_file)
            if path.suffix.lower() == ".geojson":
                findings += _scan_geojson(path, limit_per_file)
            continue
        text = _read_text(path)
        if text is None:
            continue
        file_findings = []
        for number, line in enumerate(text.splitlines(), start=1):
            for kind, match in scan_text(line, keys):
                file_findings.append(Finding(path, f"line {number}", kind, mask(match)))
            if len(file_findings) >= limit_per_file:
                break
        findings += file_findings[:limit_per_file]
    return findings

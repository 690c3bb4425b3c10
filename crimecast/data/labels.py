"""The city's own codes and labels: how a raw value becomes a category or an area, and how
a rejected value is shown without leaking free text.

One config map (``configs/data.yaml`` key ``categories``: category name → list of the
city's codes or labels) turns any code or label, integer or text, into a category.
Values are compared after :func:`normalise_label` (trimmed, inner whitespace collapsed,
case-folded, ``"600.0"`` read as ``"600"``), so ``Traffic Stop``, ``TRAFFIC  STOP`` and
``traffic stop`` are one label, and the integer ``600`` in YAML matches ``"600"`` in a CSV.

A rejected value is kept in the quarantine file only when it looks like a label (short,
letters, digits and light punctuation, no street address); anything else, which may be
free text typed into the wrong field, becomes ``<redacted: N chars>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from crimecast.config import ConfigError
from crimecast.data.privacy import ANY_LEAK

_SPACES = re.compile(r"\s+")
_INTEGRAL = re.compile(r"^[+-]?\d+\.0*$")
# A label: up to 40 characters of letters, digits, spaces and the punctuation that
# offense descriptions use ("THEFT - FROM VEHICLE", "Assault (Simple)", "DUI/DWI").
_LABEL_TEXT = re.compile(r"^[\w .,&/()'#+:\-]{1,40}$")


def normalise_label(value: object) -> str:
    """The comparison form of a code or label: ``""`` for missing values."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    text = _SPACES.sub(" ", str(value)).strip().casefold()
    if _INTEGRAL.match(text):
        text = str(int(float(text)))
    return "" if text in ("nan", "none", "<na>") else text


def category_lookup(categories: Mapping[str, Sequence[str | int]]) -> dict[str, str]:
    """``{normalised label: category}`` from the ``categories`` config map. Each category
    name also maps to itself, so a column that already holds category names needs no
    list. A label listed under two categories is a :class:`ConfigError`."""
    lookup: dict[str, str] = {}
    for category, labels in categories.items():
        for label in labels:
            key = normalise_label(label)
            if not key:
                raise ConfigError(f"category '{category}' lists an empty label",
                                  file="configs/data.yaml", key=f"categories.{category}",
                                  hint="remove the empty entry")
            if key in lookup and lookup[key] != category:
                raise ConfigError(
                    f"label {label!r} is listed under both '{lookup[key]}' and '{category}'",
                    file="configs/data.yaml", key=f"categories.{category}",
                    hint="keep each code or label under one category")
            lookup[key] = category
    for category in categories:
        lookup.setdefault(normalise_label(category), category)
    return lookup


def normalised_labels(values: pd.Series) -> pd.Series:
    """:func:`normalise_label` of each value (``""`` when missing), computed once per
    distinct value: 1.5 M rows with a few hundred labels cost one factorisation."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    normal = np.array([normalise_label(u) for u in uniques] + [""], dtype=object)
    return pd.Series(normal[codes], index=values.index, dtype=object)


def map_labels(values: pd.Series, lookup: Mapping[str, str]) -> pd.Series:
    """Category of each raw value (None when unmapped or missing), looked up once per
    distinct value."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.array([lookup.get(normalise_label(u)) for u in uniques] + [None], dtype=object)
    return pd.Series(mapped[codes], index=values.index, dtype=object)


def safe_label(values: pd.Series) -> pd.Series:
    """Each value as text when it looks like a code or label, else ``<redacted: N chars>``
    (a malformed or free-text field may hold a name or an address)."""
    text = values.astype(str).where(values.notna(), "")
    uniques = pd.unique(text)
    shown = {u: (u if _LABEL_TEXT.match(u) and not ANY_LEAK.search(u) else
                 f"<redacted: {len(u)} chars>") for u in uniques if u}
    shown[""] = ""
    return text.map(shown)

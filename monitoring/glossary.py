"""The report's glossary: every term the public report uses, in plain words.

:func:`term` links a word of the report to its entry on ``glossary.html``;
:func:`glossary_page` renders that page. Words that depend on the deployment (what one
area is called, the suppression floor, the band) are filled in from the settings.
"""

from __future__ import annotations

import html
from typing import Any

GLOSSARY_FILE = "glossary.html"

#: slug -> (term, definition); ``{unit}``, ``{units}``, ``{floor}``, ``{low}``, ``{high}``
#: and ``{exempt_text}`` are filled in from the report's context.
TERMS: dict[str, tuple[str, str]] = {
    "forecast": ("forecast", ("The number of crimes the model expects to be recorded in one "
                 "{unit} in one week. It is about places and weeks, never about people.")),
    "target-week": ("target week", ("The week a forecast is for: the week after the last week "
                    "of recorded crime in the data.")),
    "risk-class": ("risk class", ("The {units} ranked by forecast crimes per square kilometre "
                   "and cut into five equal groups: class 1 holds the fifth with the lowest "
                   "forecast, class 5 the fifth with the highest. Classes are shown instead of "
                   "numbers so no small count can be read off the map.")),
    "suppression": ("<{floor} (suppressed)", ("Any count below {floor} is shown as “<{floor}”, "
                    "never exactly, so no single incident can be picked out.")),
    "unit": ("{unit}", ("The kind of place the forecasts are made for in this deployment. "
             "Every number in the report is per {unit} and week.")),
    "hotspot": ("hotspot flag", ("Each week the {units} with the highest forecast are flagged "
                "as hotspots until they cover the configured share of the city's land "
                "(5 % by default). Flags are what patrol and outreach planning look at first.")),
    "disparity": ("flags per recorded crime, relative to the city", ("A group's share of "
                  "hotspot flags divided by its share of recorded crime. 1.0 means the group is "
                  "flagged exactly as often as its crime would suggest; 2.0 means twice as "
                  "often; 0.5 half as often. Between {low} and {high} counts as fair; outside "
                  "raises an alert.")),
    "per-resident": ("flags per resident, relative to the city", ("A group's share of hotspot "
                     "flags divided by its share of residents. It shows who lives where the "
                     "flags go; it is reported but not used to decide promotions, because "
                     "areas with more crime are flagged more by any accurate model.")),
    "band": ("fair band", ("The range {low}–{high} of the disparity ratio inside which a group "
             "counts as treated fairly; 0.8 and 1.25 are equally far from 1.0 (1.25 = 1/0.8).")),
    "group": ("group", ("Each {unit} is labelled with the largest race/ethnicity group among its "
              "residents when that group is a majority (census figures). Groups are labels of "
              "places, not of people.")),
    "mixed": ("mixed", ("A {unit} where no single race/ethnicity group makes up the majority of "
              "residents.")),
    "unknown": ("unknown (no residents)", ("A {unit} with no resident population in the census "
                "(parks, an airport, industrial land, a river front). Fairness between groups "
                "of residents does not apply to it, so it is never drawn or alerted on as a "
                "disparity ({exempt_text}).")),
    "mae": ("average miss (MAE)", ("Mean absolute error: on average, how many crimes the forecast "
            "was off by, per {unit} and week. Lower is better; 0 would be perfect.")),
    "pai": ("hotspot accuracy (PAI)", ("Predictive accuracy index: the share of recorded crime "
            "inside the flagged hotspots divided by the share of land they cover. 1 is no "
            "better than picking places at random; higher is better.")),
    "coverage": ("80 % range", ("Every forecast comes with a range the recorded count should "
                 "fall inside 8 times in 10. Coverage is how often it actually did; close to "
                 "80 % is right, far below means the ranges are too narrow.")),
    "drift": ("drift", ("A change in the data the model reads (recent weekly counts) compared "
              "with the reference weeks. Drift is not wrong by itself, but a model trained on "
              "the old pattern may forecast worse.")),
    "drift-share": ("share of drifted inputs", ("Of the recent-crime figures the model reads "
                    "(last week's count, the 4-week and 13-week averages), the share that "
                    "changed markedly this week. Census figures stay the same from week to "
                    "week and are checked separately.")),
    "forecast-drift": ("forecast drift", ("The forecasts themselves moving away from those of "
                       "the reference weeks.")),
    "reference": ("reference weeks", ("The weeks just before the monitored weeks, when the "
                  "model was known to work; drift and accuracy are compared with them.")),
    "replay": ("replayed weeks", ("Before the forecasting service has answered real requests, "
               "monitoring re-runs the model on the last weeks of recorded data as if it had "
               "forecast them at the time, then compares with what was recorded.")),
    "champion": ("model in service (champion)", ("The model version whose forecasts the service "
                 "answers with. It changes only through the promotion gate, or by a rollback.")),
    "challenger": ("candidate (challenger)", ("A newly trained model version waiting for the "
                   "promotion gate.")),
    "gate": ("promotion gate", ("The fixed test a candidate must pass to replace the model in "
             "service: better or not worse on accuracy, and fair to every group, both judged on "
             "the same past weeks with 95 % confidence intervals.")),
    "ci": ("95 % confidence interval", ("The range a difference would fall in 95 times out of "
           "100 if the comparison were repeated on similar weeks. A difference whose interval "
           "includes zero is not shown to be real.")),
    "exception": ("public exception", ("When no available model passes the fairness rule but a "
                  "forecast must be served, the least unfair accurate baseline is used and the "
                  "reason is published here.")),
    "manual": ("manual change (gate bypass)", ("Someone moved the model in service directly in "
               "the model registry (for example the MLflow web page) instead of through the "
               "promotion gate. crimecast notices it at the next check, records it and raises "
               "an alert.")),
    "alert": ("alert status", ("open: nobody has acted yet; acknowledged: a named person is "
              "working on it; resolved: fixed or explained, with who and when.")),
    "exposure": ("exposure", ("Where the patrol units and outreach slots the allocation service "
                 "actually handed out went, by group, compared with each group's share of "
                 "forecast risk and of residents.")),
    "operator": ("operator", ("The account that ran a crimecast command (for example a "
                 "scheduled job). “root” is the machine's administrator account.")),
}


def group_words(group: str, rule: str) -> str:
    """A group label as a reader says it: ``Hispanic-majority``, ``mixed (no majority)``."""
    if group == "unknown":
        return "no residents (unknown)"
    if group == "mixed":
        return "mixed (no majority)"
    if rule == "income_tercile":
        return f"{group}-income"
    return f"{group.capitalize()}-majority"


def _fill(text: str, context: dict[str, Any]) -> str:
    return text.format(**{k: context.get(k, "") for k in
                          ("unit", "units", "floor", "low", "high", "exempt_text")})


def term(slug: str, text: str | None = None, context: dict[str, Any] | None = None) -> str:
    """``<a>`` to the glossary entry ``slug`` (KeyError for an unknown term), showing
    ``text`` (default: the term itself)."""
    name, definition = TERMS[slug]
    context = context or {}
    label = text if text is not None else _fill(name, context)
    title = html.escape(_fill(definition, context), quote=True)
    return (f"<a class='term' href='{GLOSSARY_FILE}#{slug}' title='{title}'>"
            f"{html.escape(label)}</a>")


def glossary_page(context: dict[str, Any], css: str) -> str:
    """The glossary page: every term with its definition, each with an anchor."""
    entries = "\n".join(
        f"<dt id='{slug}'>{html.escape(_fill(name, context))}</dt>"
        f"<dd>{html.escape(_fill(definition, context))}</dd>"
        for slug, (name, definition) in TERMS.items())
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Glossary — {html.escape(context.get('city', ''))} crime forecast report</title>"
        f"<style>{css}</style></head><body><main>"
        f"<p><a href='index.html'>← back to the report</a></p>"
        f"<h1>Glossary</h1><dl class='glossary'>{entries}</dl></main></body></html>")

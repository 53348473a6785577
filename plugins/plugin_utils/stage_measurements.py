# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each canary stage's measurements, read from the records the gate holds, for the reports.

- The stage of a record is ``evidence.stage.weight``: canary_state stamps it on every record of a stage (the SLO
  records, the alert check, the split, the stage's own ``canary.step`` record). A record without it has no stage.
- An SLO record is a record of an ``slo.*`` criterion or one whose evidence holds ``measurements`` (the metric
  records of slo_analysis). Its figures are read from its last measurement that has a value (a failed metric stops
  at the look that failed it, so that is the deciding one): the canary's value, the baseline's (stable) value, the
  threshold and the requests each side served.
- The figures are read by name from what the measurement carries, so any judge's looks fit: ``value`` (or the
  judged ``share`` with its ``limit``, ``lower``/``upper`` bounds, ``bad`` of ``total`` requests and ``decision``),
  ``baseline`` (a number, or a mapping with its own share/value and total), ``traffic``/``total``/``requests``,
  ``baseline_requests``/``baseline_total``. A figure that is missing is shown as ``-``, never guessed.

Controller-only and pure: the report is already redacted when it gets here, and only numbers, statuses and the
records' own (redacted) reasons are shown - never queries, labels or URLs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.metrics_analysis import OPS, fmt

NONE = "-"
STEP_CRITERION = "canary.step"
COLUMNS = ("Criterion", "Metric", "Status", "Canary", "Stable", "Threshold", "Requests (canary / stable)", "Looks",
           "Last look")

_VALUE_KEYS = ("value",)
_SHARE_KEYS = ("share",)
_BASELINE_KEYS = ("baseline", "baseline_value", "stable")
_BASELINE_SHARE_KEYS = ("baseline_share", "stable_share")
_LIMIT_KEYS = ("limit", "threshold")
_REQUEST_KEYS = ("traffic", "total", "requests")
_BASELINE_REQUEST_KEYS = ("baseline_requests", "baseline_total", "stable_requests", "stable_total")
_NOTE_LIMIT = 160


# ---------------------------------------------------------------------------------------------
# Which records, which stage
# ---------------------------------------------------------------------------------------------

def stage_of(record):
    """The stage weight (percent) a record belongs to, or None."""
    evidence = record.get("evidence")
    stage = evidence.get("stage") if isinstance(evidence, dict) else None
    weight = stage.get("weight") if isinstance(stage, dict) else None
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        return None
    return int(weight) if weight == int(weight) else weight


def stage_label(weight):
    return "stage %s %%" % weight


def is_slo_record(criterion, record):
    evidence = record.get("evidence")
    return criterion.startswith("slo.") or (isinstance(evidence, dict) and isinstance(evidence.get("measurements"), list))


# ---------------------------------------------------------------------------------------------
# Figures of one SLO record
# ---------------------------------------------------------------------------------------------

def _first(item, keys):
    for key in keys:
        if isinstance(item, dict) and item.get(key) is not None:
            return item[key]
    return None


def _number_text(value, unit):
    if isinstance(value, bool) or value is None:
        return NONE
    if isinstance(value, (int, float)):
        return fmt(float(value), unit)
    if isinstance(value, str) and value:
        return value  # NaN and Inf travel as text in JSON
    return NONE


def _side(value):
    """A baseline may be a number, or a mapping with its own figures: ``(value, requests, bad)``."""
    if isinstance(value, dict):
        return _first(value, _SHARE_KEYS + _VALUE_KEYS), _first(value, _REQUEST_KEYS), _first(value, ("bad",))
    return value, None, None


def _last_look(measurements):
    looks = [m for m in measurements if isinstance(m, dict)]
    with_value = [m for m in looks if _first(m, _SHARE_KEYS + _VALUE_KEYS) is not None]
    if with_value:
        return with_value[-1]
    return looks[-1] if looks else {}


def _condition_text(condition, unit):
    if not isinstance(condition, dict) or condition.get("op") not in OPS:
        return None
    return "%s %s" % (OPS[condition["op"]][0], _number_text(condition.get("value"), unit))


def _compare_text(compare, unit):
    if not isinstance(compare, dict):
        return None
    name = compare.get("baseline_label") or "stable"
    lower = compare.get("worse") == "lower"
    parts = []
    if isinstance(compare.get("max_increase"), (int, float)):
        parts.append("%s %s %s %s" % (">=" if lower else "<=", name, "-" if lower else "+",
                                      _number_text(compare["max_increase"], unit)))
    if isinstance(compare.get("max_increase_ratio"), (int, float)):
        parts.append("%s %s x %s" % (">=" if lower else "<=", name,
                                     fmt(1.0 - compare["max_increase_ratio"] if lower else 1.0 + compare["max_increase_ratio"],
                                         "plain")))
    return " and ".join(parts) or None


def _threshold(metric, look, share_family):
    """The look's own limit when the judge gives one, else the metric's condition and comparison."""
    unit = metric.get("unit") or "plain"
    limit = _first(look, _LIMIT_KEYS)
    if limit is not None:  # the highest share (or value) the look allowed
        return "<= %s" % _number_text(limit, "ratio" if share_family else unit)
    parts = [text for text in (_condition_text(metric.get("condition"), unit), _compare_text(metric.get("compare"), unit))
             if text]
    return "; ".join(parts) or NONE


def _requests(look, baseline_requests):
    canary = _first(look, _REQUEST_KEYS)
    stable = _first(look, _BASELINE_REQUEST_KEYS)
    if stable is None:
        stable = baseline_requests
    canary_text = _number_text(canary, "plain")
    if stable is None:
        return canary_text
    return "%s / %s" % (canary_text, _number_text(stable, "plain"))


def _looks(evidence):
    counts = evidence.get("counts") if isinstance(evidence.get("counts"), dict) else {}
    limits = evidence.get("limits") if isinstance(evidence.get("limits"), dict) else {}
    taken = counts.get("measurements")
    if taken is None and isinstance(evidence.get("measurements"), list):
        taken = len(evidence["measurements"])
    if taken is None:
        return NONE
    if limits.get("count") is not None:
        return "%s of %s" % (taken, limits["count"])
    return str(taken)


def _note(look, share_family, record_status):
    notes = []
    unit = "ratio" if share_family else "plain"
    lower, upper = _first(look, ("lower", "lower_bound")), _first(look, ("upper", "upper_bound"))
    if lower is not None and upper is not None:
        notes.append("in [%s, %s]" % (_number_text(lower, unit), _number_text(upper, unit)))
    elif lower is not None or upper is not None:
        notes.append("%s bound %s" % ("lower" if lower is not None else "upper", _number_text(
            lower if lower is not None else upper, unit)))
    if look.get("p95") is not None:  # the raw p95 of coarse buckets: evidence next to the judged share
        p95 = "p95 %s" % _number_text(look["p95"], "seconds")
        if look.get("baseline_p95") is not None:
            p95 += " (stable %s)" % _number_text(look["baseline_p95"], "seconds")
        notes.append(p95)
    if look.get("reason") and (record_status != "pass" or look.get("outcome") not in ("successful", None)):
        notes.append(str(look["reason"]))  # says what went wrong (a judge's reason names its counts too)
    else:
        if look.get("bad") is not None and _first(look, _REQUEST_KEYS) is not None:
            notes.append("%s bad of %s" % (_number_text(look["bad"], "plain"),
                                           _number_text(_first(look, _REQUEST_KEYS), "plain")))
        if look.get("decision") is not None:
            notes.append("decision %s" % look["decision"])
        elif look.get("outcome"):
            notes.append(str(look["outcome"]))
    text = "; ".join(notes)
    return text if len(text) <= _NOTE_LIMIT else text[:_NOTE_LIMIT - 3] + "..."


def figures(record):
    """``{canary, stable, threshold, requests, looks, note}`` of an SLO record, each a short text (``-`` when the
    record does not carry it)."""
    evidence = record.get("evidence") if isinstance(record.get("evidence"), dict) else {}
    metric = evidence.get("metric") if isinstance(evidence.get("metric"), dict) else {}
    measurements = evidence.get("measurements") if isinstance(evidence.get("measurements"), list) else []
    look = _last_look(measurements)
    share_family = _first(look, _SHARE_KEYS) is not None and _first(look, _LIMIT_KEYS) is not None
    unit = "ratio" if share_family else (metric.get("unit") or "plain")
    if share_family:
        canary = _first(look, _SHARE_KEYS)
        stable, stable_requests, dummy = _side(_first(look, _BASELINE_SHARE_KEYS + _BASELINE_KEYS))
    else:
        canary = _first(look, _VALUE_KEYS)
        if canary is None:
            canary = _first(look, _SHARE_KEYS)
        stable, stable_requests, dummy = _side(_first(look, _BASELINE_KEYS + _BASELINE_SHARE_KEYS))
    return {
        "canary": _number_text(canary, unit),
        "stable": _number_text(stable, unit),
        "threshold": _threshold(metric, look, share_family),
        "requests": _requests(look, stable_requests) if look else NONE,
        "looks": _looks(evidence),
        "note": _note(look, share_family, record.get("status")) if look else "",
    }


# ---------------------------------------------------------------------------------------------
# The stages of a report
# ---------------------------------------------------------------------------------------------

def _metric_name(criterion, record):
    name = record.get("name") or criterion
    return NONE if name in (criterion, criterion.split(".", 1)[-1]) else name


def row(criterion, record):
    """One SLO record as a row of a stage table."""
    item = {"criterion": criterion, "metric": _metric_name(criterion, record), "status": record.get("status"),
            "blocking": bool(record.get("blocking", True)), "summary": record.get("summary") or ""}
    item.update(figures(record))
    return item


def row_cells(item):
    status = item["status"] if item["blocking"] else "%s (advisory)" % item["status"]
    return [item["criterion"], item["metric"], status, item["canary"], item["stable"], item["threshold"],
            item["requests"], item["looks"], item["note"]]


def stages(report):
    """The stages of the report, in order (per host, unstaged first, then by weight): each ``{host, weight, label,
    step, rows, others}``; ``step`` is the stage's own canary.step record, ``rows`` its SLO records, ``others`` the
    rest of its records as ``(criterion, name, status)``. Only groups with an SLO record or a stage are returned; a
    report without SLO records and stages gives none."""
    groups = {}
    for criterion in report.get("criteria") or []:
        for record in criterion.get("records") or []:
            weight = stage_of(record)
            key = (record.get("host") or "", weight is not None, weight or 0)
            group = groups.setdefault(key, {"host": record.get("host"), "weight": weight,
                                            "label": stage_label(weight) if weight is not None else "not staged",
                                            "step": None, "rows": [], "others": []})
            if is_slo_record(criterion["criterion"], record):
                group["rows"].append(row(criterion["criterion"], record))
            elif weight is None:
                continue  # not a stage's record: it has its own line under All criteria
            elif criterion["criterion"] == STEP_CRITERION and record.get("name") == "%s.%s" % (STEP_CRITERION, weight):
                group["step"] = record
            else:
                group["others"].append((criterion["criterion"], record.get("name") or criterion["criterion"],
                                        record.get("status")))
    found = [groups[key] for key in sorted(groups)]
    for group in found:
        group["rows"].sort(key=lambda item: (item["criterion"], item["metric"]))
        group["others"].sort()
    return [g for g in found if g["rows"] or g["weight"] is not None]


def text_table(rows):
    """A plain-text table of rows (for JUnit's text), columns padded to their widest cell."""
    cells = [list(COLUMNS)] + [row_cells(item) for item in rows]
    widths = [max(len(str(line[index])) for line in cells) for index in range(len(COLUMNS))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells)


def figures_line(item):
    """One SLO record's figures in a line: ``canary 5.1 %, stable 0 %, threshold < 1 %, requests 35 / 310``."""
    return "canary %s, stable %s, threshold %s, requests %s, looks %s" % (
        item["canary"], item["stable"], item["threshold"], item["requests"], item["looks"])

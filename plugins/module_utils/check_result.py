# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one check-result record every module returns, and the helpers that build it.

A record is ``{criterion, name, status, blocking, summary, evidence, duration_ms}`` where status is
pass, fail, error or skipped. ``error`` means the check could not decide; the gate treats it as
NO-GO (fail closed), never as a pass.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

PASS = "pass"
FAIL = "fail"
ERROR = "error"
SKIPPED = "skipped"
STATUSES = (PASS, FAIL, ERROR, SKIPPED)

# Why a record was skipped. check_mode: the check would act or needs an effect that check mode withholds,
# so a blocking one leaves the release unverified. not_requested: the operator turned it off.
# not_applicable: nothing of the kind exists on this host.
SKIP_CHECK_MODE = "check_mode"
SKIP_NOT_REQUESTED = "not_requested"
SKIP_NOT_APPLICABLE = "not_applicable"
SKIP_REASONS = (SKIP_CHECK_MODE, SKIP_NOT_REQUESTED, SKIP_NOT_APPLICABLE)

# Worst first: an aggregate takes the first status present in this order.
_SEVERITY = (ERROR, FAIL, PASS, SKIPPED)

CRITERION_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")


def make_record(criterion, status, summary, evidence=None, blocking=True, duration_ms=0.0, name=None,
                skip_reason=None):
    """Build one record; ``name`` tells apart several checks that serve one criterion.

    ``skip_reason`` says why a skipped record was not decided (one of SKIP_REASONS); the verdict reads
    it, never the summary's wording.
    """
    if status not in STATUSES:
        raise ValueError("unknown status %r" % (status,))
    if skip_reason is not None and (status != SKIPPED or skip_reason not in SKIP_REASONS):
        raise ValueError("skip_reason %r needs status skipped and one of %s" % (skip_reason, ", ".join(SKIP_REASONS)))
    record = {
        "criterion": criterion,
        "name": name or criterion,
        "status": status,
        "blocking": bool(blocking),
        "summary": summary,
        "evidence": evidence if evidence is not None else {},
        "duration_ms": round(float(duration_ms), 1),
    }
    if skip_reason is not None:
        record["skip_reason"] = skip_reason
    return record


def join_limited(items, limit=20):
    """``a, b, c and 7 more``: a readable list for a summary, ``(none)`` when empty."""
    items = list(items)
    text = ", ".join(items[:limit])
    if len(items) > limit:
        text += " and %d more" % (len(items) - limit)
    return text or "(none)"


def worst_status(statuses):
    """The aggregate of many statuses: error beats fail beats pass beats skipped."""
    present = set(statuses)
    for status in _SEVERITY:
        if status in present:
            return status
    return SKIPPED


class Stopwatch:
    """Monotonic elapsed time in milliseconds (wall-clock jumps never distort durations)."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._start = clock()

    @property
    def elapsed_ms(self):
        return (self._clock() - self._start) * 1000.0


def summarize(records):
    """Counts per status and the overall status of a list of records (blocking ones decide)."""
    counts = dict((status, 0) for status in STATUSES)
    for record in records:
        counts[record["status"]] += 1
    blocking = [r["status"] for r in records if r.get("blocking", True)]
    return {"status": worst_status(blocking) if blocking else worst_status(r["status"] for r in records),
            "counts": counts}


def exit_with_records(module, records, changed=False, **extra):
    """End a check module: the records plus their summary. A failing check is data, not a task
    failure: the gate decides. Only bad input fails the task (through fail_json)."""
    overview = summarize(records)
    module.exit_json(changed=changed, records=records, status=overview["status"],
                     counts=overview["counts"], **extra)


def rollup_record(criterion, records, name=None, label=None, evidence=None, blocking=True):
    """One record standing for many (a soak round, a canary stage): the worst blocking status, a summary
    naming what did not pass, and each part's criterion, status and summary as evidence.

    No parts is an ``error``: a rollup of nothing has decided nothing."""
    parts = [r for r in records if isinstance(r, dict) and r.get("status") in STATUSES]
    label = label or criterion
    combined = dict(evidence or {})
    combined["parts"] = [dict((key, r.get(key)) for key in ("criterion", "name", "status", "blocking", "summary"))
                         for r in parts]
    if not parts:
        return make_record(criterion, ERROR, "%s: no check reported anything, nothing was decided" % label,
                           combined, blocking, name=name)
    overview = summarize(parts)
    status = overview["status"]
    combined["counts"] = overview["counts"]
    if status == PASS:
        summary = "%s: all %d checks passed" % (label, overview["counts"][PASS])
    elif status == SKIPPED:
        summary = "%s: every check was skipped (%s)" % (label, parts[0].get("summary", ""))
    else:
        bad = [r for r in parts if r["status"] == status and r.get("blocking", True)]
        summary = "%s: %s" % (label, "; ".join("%s %s: %s" % (r.get("name") or r.get("criterion"), r["status"],
                                                              r.get("summary", "")) for r in bad[:5]))
        if len(bad) > 5:
            summary += " and %d more" % (len(bad) - 5)
    duration = sum(float(r.get("duration_ms") or 0) for r in parts)
    return make_record(criterion, status, summary, combined, blocking, duration, name=name)


def records_of_results(results, criterion):
    """The records of registered check results. A check task that failed without records (bad input, a missing
    library) becomes an ``error`` record of ``criterion`` carrying its message; a skipped task gives none."""
    records = []
    for result in results or []:
        if not isinstance(result, dict) or result.get("skipped"):
            continue
        if isinstance(result.get("records"), list) and result["records"]:
            records.extend(result["records"])
        elif result.get("failed"):
            records.append(make_record(criterion, ERROR, "a check task failed without records: %s"
                                       % (result.get("msg") or "no message"), name="%s.task_failed" % criterion))
    return records

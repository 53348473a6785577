# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gate's decision: many check records -> one verdict (the report that gonogo.json holds).

Controller-only, pure logic (standard library only): the ``gate`` action plugin calls it and the unit
tests call it directly. Nothing here talks to a host; the reports are written by ``reports``.

Verdicts:

- ``GO``: every blocking criterion that ran passed (or is waived), every required criterion has a
  real outcome, and at least one blocking criterion passed.
- ``NO-GO``: at least one blocking criterion failed (errors are listed too).
- ``NO-GO-INCONCLUSIVE``: nothing failed, but something could not be decided: a blocking ``error``,
  a required criterion without a real outcome, a blocking check skipped because of check mode,
  an expected host without any result, nothing verified at all, or malformed input.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import CRITERION_PATTERN, worst_status
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import ERROR, FAIL, PASS, SKIPPED, STATUSES
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import SKIP_CHECK_MODE, SKIP_REASONS
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import (
    redact,
    redact_text,
)
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils.criteria_catalog import (
    CatalogError,
    known_criteria,
    unknown_criterion,
)

GO = "GO"
NO_GO = "NO-GO"
INCONCLUSIVE = "NO-GO-INCONCLUSIVE"
VERDICTS = (GO, NO_GO, INCONCLUSIVE)

# What the gate makes of one criterion, most severe first.
OUTCOME_FAIL = "fail"
OUTCOME_INCONCLUSIVE = "inconclusive"
OUTCOME_WAIVED = "waived"
OUTCOME_ADVISORY = "advisory"
OUTCOME_PASS = "pass"
OUTCOME_SKIPPED = "skipped"
OUTCOMES = (OUTCOME_FAIL, OUTCOME_INCONCLUSIVE, OUTCOME_WAIVED, OUTCOME_ADVISORY, OUTCOME_PASS, OUTCOME_SKIPPED)

MISSING = "missing"  # the status of a required criterion that no record speaks about
SCHEMA_VERSION = 1

_RECORD_FIELDS = frozenset(("criterion", "name", "status", "blocking", "summary", "evidence", "duration_ms", "host",
                            "skip_reason"))
_WAIVER_FIELDS = frozenset(("criterion", "reason", "expires", "host", "approved_by", "ticket"))
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SUMMARY_LIMIT = 200
_VALUE_LIMIT = 60


# ---------------------------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------------------------

def to_plain(value):
    """A deep copy made of plain dict/list/str/int/float/bool/None/date (templating engines hand
    over their own subclasses; reports and JSON want the plain types)."""
    if isinstance(value, dict) or (hasattr(value, "items") and hasattr(value, "keys")):
        return dict((to_plain(k), to_plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_plain(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value
    return str(value)


def _short(value, limit=_VALUE_LIMIT):
    text = value if isinstance(value, str) else repr(value)
    text = redact_text(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _is_text(value):
    return isinstance(value, str)


def _skip_reason_errors(skip_reason, status, where):
    if skip_reason is None:
        return []
    if skip_reason not in SKIP_REASONS:
        return ["%s.skip_reason: unknown skip reason %s (expected %s)" % (where, _short(skip_reason), ", ".join(SKIP_REASONS))]
    if status != SKIPPED:
        return ["%s.skip_reason: only a skipped record has a skip reason, this one is %s" % (where, _short(status))]
    return []


def normalize_record(raw, where, secrets=(), default_host=None):
    """Check one record; return ``(record, errors)``. A record whose criterion is readable but
    whose other fields are not becomes an ``error`` record (the check ran, its outcome is unknown),
    so the criterion shows as inconclusive instead of vanishing."""
    errors = []
    if not isinstance(raw, dict):
        return None, ["%s: a record must be a mapping, got %s" % (where, type(raw).__name__)]
    criterion = raw.get("criterion")
    if criterion is None or criterion == "":
        return None, ["%s.criterion: missing (every record names the criterion it serves)" % where]
    if not _is_text(criterion) or not CRITERION_PATTERN.match(criterion):
        return None, ["%s.criterion: %s is not a criterion id (like health.readiness)" % (where, _short(criterion))]
    unknown = sorted(str(k) for k in raw if k not in _RECORD_FIELDS)
    if unknown:
        errors.append("%s: unknown field(s) %s" % (where, ", ".join(_short(k) for k in unknown)))
    status = raw.get("status")
    if status not in STATUSES:
        errors.append("%s.status: unknown status %s (expected pass, fail, error or skipped)"
                      % (where, "missing" if status is None else _short(status)))
    blocking = raw.get("blocking", True)
    if not isinstance(blocking, bool):
        errors.append("%s.blocking: must be true or false, got %s" % (where, _short(blocking)))
    summary = raw.get("summary", "")
    if summary is None:
        summary = ""
    if not isinstance(summary, (str, int, float)) or isinstance(summary, bool):
        errors.append("%s.summary: must be text" % where)
    evidence = raw.get("evidence", {})
    if evidence is None:
        evidence = {}
    if not isinstance(evidence, dict):
        errors.append("%s.evidence: must be a mapping, got %s" % (where, type(evidence).__name__))
    duration = raw.get("duration_ms", 0.0)
    if duration is None:
        duration = 0.0
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        errors.append("%s.duration_ms: must be a number" % where)
    name = raw.get("name") or criterion
    if not _is_text(name):
        errors.append("%s.name: must be text" % where)
    host = raw.get("host", default_host)
    if host is not None and not _is_text(host):
        errors.append("%s.host: must be text" % where)
    skip_reason = raw.get("skip_reason")
    errors.extend(_skip_reason_errors(skip_reason, status, where))

    if errors:
        record = {
            "criterion": criterion, "name": criterion, "status": ERROR, "blocking": True,
            "summary": "malformed record: %s" % "; ".join(errors),
            "evidence": {"input_error": errors}, "duration_ms": 0.0,
            "host": host if _is_text(host) else None, "source": where, "malformed": True,
        }
        return redact(record, secrets), errors
    record = {
        "criterion": criterion, "name": name, "status": status, "blocking": blocking,
        "summary": str(summary), "evidence": evidence, "duration_ms": round(float(duration), 1),
        "host": host, "source": where, "malformed": False, "skip_reason": skip_reason,
    }
    return redact(record, secrets), []


def collect(records=None, results=None, secrets=()):
    """Gather records from ``records`` (a list of records) and ``results`` (registered results,
    loop registrations, lists of them gathered from hostvars, or a mapping of host -> result).
    Returns ``(records, input_errors, notes)``."""
    out, errors, notes = [], [], []

    def add(raw, where, host):
        record, problems = normalize_record(raw, where, secrets=secrets, default_host=host)
        errors.extend(problems)
        if record is not None:
            out.append(record)

    if records is not None:
        if not isinstance(records, list):
            errors.append("records: must be a list of records, got %s" % type(records).__name__)
        else:
            for index, raw in enumerate(records):
                add(raw, "records[%d]" % index, None)

    def walk(item, where, host):
        if isinstance(item, list):
            for index, sub in enumerate(item):
                walk(sub, "%s[%d]" % (where, index), host)
            return
        if not isinstance(item, dict):
            errors.append("%s: expected a registered result or a record, got %s" % (where, type(item).__name__))
            return
        if "records" in item:
            result_host = item.get("host", host) if _is_text(item.get("host")) else host
            inner = item["records"]
            if not isinstance(inner, list):
                errors.append("%s.records: must be a list, got %s" % (where, type(inner).__name__))
                return
            if not inner:
                notes.append("%s: a result with no records" % where)
            for index, raw in enumerate(inner):
                add(raw, "%s.records[%d]" % (where, index), result_host)
            return
        if "results" in item and isinstance(item["results"], list):
            walk(item["results"], "%s.results" % where, host)
            return
        if "criterion" in item:
            add(item, where, host)
            return
        if item.get("skipped"):
            notes.append("%s: a skipped task (no records)%s" % (where, " on %s" % host if host else ""))
            return
        if item.get("failed"):
            message = item.get("msg") or "no message"
            errors.append("%s: the check task failed without records%s: %s"
                          % (where, " on %s" % host if host else "", _short(redact_text(str(message), secrets), 200)))
            return
        errors.append("%s: not a registered check result (no 'records')" % where)

    if results is not None:
        result_keys = ("records", "results", "criterion", "failed", "skipped")
        if isinstance(results, dict) and not any(key in results for key in result_keys):
            for host in sorted(results, key=str):
                walk(results[host], "results[%s]" % _short(str(host)), str(host))
        else:
            walk(results, "results", None)
    return out, errors, notes


def _parse_date(value):
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if not _is_text(value) or not _DATE.match(value.strip()):
        return None
    try:
        return datetime.datetime.strptime(value.strip(), "%Y-%m-%d").date()
    except ValueError:
        return None


def parse_waivers(waivers, today, secrets=()):
    """Validate waivers. Returns ``(active, expired, errors)``; an expired waiver is ignored (and
    reported), a waiver without a reason or with a bad date is bad input."""
    active, expired, errors = [], [], []
    if waivers is None:
        return active, expired, errors
    if not isinstance(waivers, list):
        return active, expired, ["waivers: must be a list, got %s" % type(waivers).__name__]
    for index, raw in enumerate(waivers):
        where = "waivers[%d]" % index
        if not isinstance(raw, dict):
            errors.append("%s: a waiver must be a mapping, got %s" % (where, type(raw).__name__))
            continue
        problems = []
        unknown = sorted(str(k) for k in raw if k not in _WAIVER_FIELDS)
        if unknown:
            problems.append("%s: unknown field(s) %s (known: %s)"
                            % (where, ", ".join(_short(k) for k in unknown), ", ".join(sorted(_WAIVER_FIELDS))))
        criterion = raw.get("criterion")
        if not _is_text(criterion) or not CRITERION_PATTERN.match(criterion):
            problems.append("%s.criterion: %s" % (where, "missing" if criterion in (None, "")
                                                  else "%s is not a criterion id" % _short(criterion)))
        reason = raw.get("reason")
        if not _is_text(reason) or not reason.strip():
            problems.append("%s.reason: missing (a waiver must say why)" % where)
        expires_raw = raw.get("expires")
        expires = _parse_date(expires_raw)
        if expires is None:
            problems.append("%s.expires: %s (expected a date YYYY-MM-DD)"
                            % (where, "missing" if expires_raw in (None, "") else "%s is not a valid date" % _short(str(expires_raw))))
        host = raw.get("host")
        if host is not None and not _is_text(host):
            problems.append("%s.host: must be text" % where)
        for optional in ("approved_by", "ticket"):
            if raw.get(optional) is not None and not _is_text(raw.get(optional)):
                problems.append("%s.%s: must be text" % (where, optional))
        if problems:
            errors.extend(problems)
            continue
        waiver = {
            "index": index, "criterion": criterion, "reason": redact_text(reason.strip(), secrets),
            "expires": expires.isoformat(), "host": host or None,
            "approved_by": raw.get("approved_by"), "ticket": raw.get("ticket"),
        }
        if expires < today:
            expired.append(waiver)
        else:
            active.append(waiver)
    return active, expired, errors


def _check_hosts(values):
    hosts, errors = [], []
    if values is None:
        return hosts, errors
    if not isinstance(values, list):
        return hosts, ["expected_hosts: must be a list of host names"]
    for index, value in enumerate(values):
        if not _is_text(value) or not value:
            errors.append("expected_hosts[%d]: must be a host name" % index)
        elif value not in hosts:
            hosts.append(value)
    return hosts, errors


def _check_ids(values, option):
    ids, errors = [], []
    if values is None:
        return ids, errors
    if not isinstance(values, list):
        return ids, ["%s: must be a list of criterion ids" % option]
    for index, value in enumerate(values):
        if not _is_text(value) or not CRITERION_PATTERN.match(value):
            errors.append("%s[%d]: %s is not a criterion id" % (option, index, _short(value)))
        elif value not in ids:
            ids.append(value)
    return ids, errors


# ---------------------------------------------------------------------------------------------
# Decision
# ---------------------------------------------------------------------------------------------

def check_mode_skip(record):
    """A skipped record whose ``skip_reason`` says check mode withheld it (never its wording nor its evidence)."""
    return record["status"] == SKIPPED and record.get("skip_reason") == SKIP_CHECK_MODE


def _waiver_for(record, waivers):
    for waiver in waivers:
        if waiver["criterion"] != record["criterion"]:
            continue
        if waiver["host"] is None or waiver["host"] == record["host"]:
            return waiver
    return None


def host_label(host):
    return host if host else "-"


def _outcome_rank(outcome):
    return OUTCOMES.index(outcome)


def pick_worst(records):
    """The record that best explains a criterion: the worst status, first seen."""
    order = (ERROR, FAIL, PASS, SKIPPED)
    ranked = sorted(enumerate(records), key=lambda pair: (order.index(pair[1]["status"]), pair[0]))
    return ranked[0][1] if ranked else None


def _criterion_summary(records, outcome):
    if not records:
        return ""
    if outcome == OUTCOME_FAIL:
        chosen = [r for r in records if r["gating"] and r["status"] == FAIL]
    elif outcome == OUTCOME_INCONCLUSIVE:
        chosen = [r for r in records if r["gating"] and (r["status"] == ERROR or r["check_mode_skip"])]
    elif outcome == OUTCOME_WAIVED:
        chosen = [r for r in records if r["waived"]]
    elif outcome == OUTCOME_ADVISORY:
        chosen = [r for r in records if r["status"] in (FAIL, ERROR)]
    else:
        chosen = list(records)
    chosen = chosen or list(records)
    hosts = sorted(set(host_label(r["host"]) for r in chosen))
    worst = pick_worst(chosen)
    text = worst["summary"] or worst["status"]
    if len(hosts) > 1 or hosts != ["-"]:
        text = "%s: %s" % (", ".join(hosts), text)
    return truncate(text, SUMMARY_LIMIT)


def _count(number, singular, plural=None):
    return "%d %s" % (number, singular if number == 1 else (plural or singular + "s"))


def truncate(text, limit):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Evaluation: the steps of evaluate()
# ---------------------------------------------------------------------------------------------

def _utc_now(now):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=datetime.timezone.utc)
    return now


def _unknown_criteria(active, expired, advisory_ids, known, names):
    """A waiver or an advisory entry naming no criterion this collection or this run knows is a typo, never a silent
    "nothing to waive": refused, naming the close ones. Returns ``(active, advisory_ids, errors)`` without them."""
    errors = []
    kept_active = []
    for waiver in active + expired:
        problem = unknown_criterion(waiver["criterion"], known)
        if problem:
            errors.append("%s[%d].criterion: %s" % (names["waivers"], waiver["index"], problem))
        elif waiver in active:
            kept_active.append(waiver)
    kept_advisory = []
    for criterion in advisory_ids:
        problem = unknown_criterion(criterion, known)
        if problem:
            errors.append("%s: %s" % (names["advisory"], problem))
        else:
            kept_advisory.append(criterion)
    return kept_active, kept_advisory, errors


def input_names(names=None):
    """The names the waivers and the advisory list go by in messages: the options' own, or the variables the user set
    (``release_waivers``), as the caller knows them."""
    given = dict(names or {})
    return {"waivers": given.get("waivers") or "waivers", "advisory": given.get("advisory") or "advisory"}


def _read_inputs(records, results, waivers, advisory, required_criteria, expected_hosts, today, secrets, names):
    """Every input checked and made plain; the input errors of all of them in one list."""
    collected, input_errors, notes = collect(to_plain(records), to_plain(results), secrets=secrets)
    active, expired, waiver_errors = parse_waivers(to_plain(waivers), today, secrets=secrets)
    waiver_errors = [names["waivers"] + error[len("waivers"):] if error.startswith("waivers") else error
                     for error in waiver_errors]
    advisory_ids, advisory_errors = _check_ids(to_plain(advisory), names["advisory"])
    required_ids, required_errors = _check_ids(to_plain(required_criteria), "required_criteria")
    expected, host_errors = _check_hosts(to_plain(expected_hosts))
    unknown_errors = []
    if active or expired or advisory_ids:
        # Known: the catalog (docs/criteria.md), and whatever this run's checks and roles name (a custom probe's own).
        try:
            known = set(known_criteria()) | set(r["criterion"] for r in collected) | set(required_ids)
        except CatalogError as exc:
            unknown_errors.append("waivers and advisory criteria cannot be checked: %s" % exc)
        else:
            active, advisory_ids, unknown_errors = _unknown_criteria(active, expired, advisory_ids, known, names)
            expired = [w for w in expired if w["criterion"] in known]
    errors = [redact_text(e, secrets)
              for e in input_errors + waiver_errors + advisory_errors + unknown_errors + required_errors + host_errors]
    return {
        "records": collected, "notes": notes, "input_errors": errors,
        "active": active, "expired": expired,
        "advisory": advisory_ids, "required": required_ids, "expected": expected,
    }


def _by_criterion(collected, required_ids):
    grouped = {}
    for record in collected:
        grouped.setdefault(record["criterion"], []).append(record)
    for criterion in required_ids:
        grouped.setdefault(criterion, [])
    return grouped


def _mark_records(recs, forced_advisory, active, used_waivers):
    """Per record: does it gate (blocking, not made advisory, not waived), is it a blocking skip for
    check mode, which waiver covers it."""
    for record in recs:
        record["effective_blocking"] = bool(record["blocking"]) and not forced_advisory
        record["check_mode_skip"] = record["effective_blocking"] and check_mode_skip(record)
        waiver = None
        if record["effective_blocking"] and (record["status"] in (FAIL, ERROR) or record["check_mode_skip"]):
            waiver = _waiver_for(record, active)
        record["waived"] = waiver is not None
        record["waiver"] = waiver["index"] if waiver else None
        if waiver:
            used_waivers.add(waiver["index"])
        record["gating"] = record["effective_blocking"] and not record["waived"]


def _waiver_for_missing(criterion, active, used_waivers):
    """A waiver for the whole criterion (no host) covers a required criterion without a result."""
    for waiver in active:
        if waiver["criterion"] == criterion and waiver["host"] is None:
            used_waivers.add(waiver["index"])
            return waiver
    return None


def _gating_status(recs):
    # A blocking failure anywhere makes the criterion fail (NO-GO) even when another host erred:
    # the same rule as the verdict's.
    statuses = set(r["status"] for r in recs if r["gating"])
    if FAIL in statuses:
        return FAIL
    return ERROR if ERROR in statuses else None


def _outcome(recs, gating_status, unresolved_missing, missing_waiver, check_mode_unverified):
    if gating_status == FAIL:
        return OUTCOME_FAIL
    if gating_status == ERROR or unresolved_missing or check_mode_unverified:
        return OUTCOME_INCONCLUSIVE
    if any(r["waived"] for r in recs) or missing_waiver:
        return OUTCOME_WAIVED
    if any(r["status"] in (FAIL, ERROR) and not r["effective_blocking"] for r in recs):
        return OUTCOME_ADVISORY
    if any(r["status"] == PASS for r in recs):
        return OUTCOME_PASS
    return OUTCOME_SKIPPED


def _missing_reason(recs, check_mode):
    skipped = [r for r in recs if r["status"] == SKIPPED]
    if any(check_mode_skip(r) for r in skipped) or (check_mode and skipped):
        return "required, but skipped in check mode: not verified"
    if skipped:
        return "required, but every record of it was skipped"
    return "required, but no check reported it"


def _criterion_reasons(recs, unresolved_missing, missing_waiver, check_mode_unverified, check_mode):
    reasons = []
    if any(r["gating"] and r["status"] == ERROR for r in recs):
        reasons.append("error: the check could not decide")
    if unresolved_missing:
        reasons.append(_missing_reason(recs, check_mode))
    if check_mode_unverified:
        reasons.append("skipped because of check mode: not verified")
    if missing_waiver:
        reasons.append("required and missing, waived until %s" % missing_waiver["expires"])
    return reasons


def _judge_criterion(criterion, recs, inputs, used_waivers, check_mode):
    """One criterion's entry of the report."""
    forced_advisory = criterion in inputs["advisory"]
    required = criterion in inputs["required"]
    _mark_records(recs, forced_advisory, inputs["active"], used_waivers)
    real = [r for r in recs if r["status"] in (PASS, FAIL, ERROR)]
    missing = required and not real
    missing_waiver = _waiver_for_missing(criterion, inputs["active"], used_waivers) if missing else None
    unresolved_missing = bool(missing and not missing_waiver)
    check_mode_unverified = any(r["check_mode_skip"] and r["gating"] for r in recs)
    outcome = _outcome(recs, _gating_status(recs), unresolved_missing, missing_waiver, check_mode_unverified)
    reasons = _criterion_reasons(recs, unresolved_missing, missing_waiver, check_mode_unverified, check_mode)
    statuses = [r["status"] for r in recs]
    summary = _criterion_summary(recs, outcome)
    if not summary and reasons:
        summary = reasons[0]
    return {
        "criterion": criterion,
        "outcome": outcome,
        "status": worst_status(statuses) if statuses else MISSING,
        "blocking": (not forced_advisory) and (required or any(r["blocking"] for r in recs)),
        "required": required,
        "advisory_override": forced_advisory,
        "waived": outcome == OUTCOME_WAIVED,
        "hosts": sorted(set(host_label(r["host"]) for r in recs)),
        "summary": summary,
        "reasons": reasons,
        "waiver": (missing_waiver["index"] if missing_waiver else None),
        "missing": unresolved_missing,
        "records": [_public_record(r) for r in recs],
    }


def _with_outcome(criteria, outcome):
    return [c["criterion"] for c in criteria if c["outcome"] == outcome]


def _blocking_count(number):
    return _count(number, "blocking criterion", "blocking criteria")


def _decide(criteria, collected, expected, input_errors):
    """The verdict, its reasons and the expected hosts without a result."""
    failing = _with_outcome(criteria, OUTCOME_FAIL)
    inconclusive = _with_outcome(criteria, OUTCOME_INCONCLUSIVE)
    verified = [c for c in criteria if c["blocking"] and c["outcome"] == OUTCOME_PASS]
    reasons = []
    verdict = NO_GO if failing else GO
    if failing:
        reasons.append("%s failed: %s" % (_blocking_count(len(failing)), ", ".join(failing)))
    if inconclusive:
        verdict = verdict if verdict == NO_GO else INCONCLUSIVE
        reasons.append("%s inconclusive: %s" % (_blocking_count(len(inconclusive)), ", ".join(inconclusive)))
    reporting_hosts = set(r["host"] for r in collected if r["host"] and r["status"] in (PASS, FAIL, ERROR))
    missing_hosts = [host for host in expected if host not in reporting_hosts]
    if missing_hosts:
        verdict = verdict if verdict == NO_GO else INCONCLUSIVE
        reasons.append("%s reported no result: %s" % (_count(len(missing_hosts), "expected host"),
                                                      ", ".join(missing_hosts)))
    if input_errors:
        verdict = verdict if verdict == NO_GO else INCONCLUSIVE
        reasons.append("%s: the gate cannot vouch for malformed input" % _count(len(input_errors), "input error"))
    if not verified and verdict == GO:
        verdict = INCONCLUSIVE
        reasons.append("no blocking criterion was verified (no passing blocking record)")
    if verdict == GO:
        waived = _with_outcome(criteria, OUTCOME_WAIVED)
        reasons.append("%s passed%s" % (_blocking_count(len(verified)), (", %d waived" % len(waived)) if waived else ""))
    return verdict, reasons, missing_hosts


def _waiver_use(active, used_waivers, criteria):
    """The applied waivers (each with what it covers) and the unused ones."""
    waiver_by_index = dict((w["index"], w) for w in active)
    applied = []
    for index in sorted(used_waivers):
        waiver = dict(waiver_by_index[index])
        waiver["covers"] = sorted(set(
            "%s@%s" % (c["criterion"], host_label(r["host"]))
            for c in criteria for r in c["records"] if r["waiver"] == index
        ) | set(c["criterion"] for c in criteria if c["waiver"] == index))
        applied.append(waiver)
    unused = [w for w in active if w["index"] not in used_waivers]
    return applied, unused


def _counts(collected, criteria):
    record_counts = dict((s, 0) for s in STATUSES)
    for record in collected:
        record_counts[record["status"]] += 1
    record_counts["total"] = len(collected)
    criteria_counts = dict((o, 0) for o in OUTCOMES)
    for criterion in criteria:
        criteria_counts[criterion["outcome"]] += 1
    criteria_counts["total"] = len(criteria)
    return {
        "criteria": criteria_counts,
        "records": record_counts,
        "hosts": len(set(r["host"] for r in collected if r["host"])),
    }


def evaluate(records=None, results=None, waivers=None, advisory=None, required_criteria=None,
             check_mode=False, release="", now=None, secrets=(), expected_hosts=None, names=None):
    """Decide. Returns the report (what ``gonogo.json`` holds). ``expected_hosts``: hosts that must
    each have reported at least one real outcome (a host that failed or became unreachable before
    its checks ran is not silently left out). ``names``: what the input errors call the waivers and the
    advisory list (``input_names``)."""
    now = _utc_now(now)
    secrets = [s for s in (secrets or ()) if s]
    names = input_names(names)
    inputs = _read_inputs(records, results, waivers, advisory, required_criteria, expected_hosts,
                          now.astimezone(datetime.timezone.utc).date(), secrets, names)
    collected = inputs["records"]
    grouped = _by_criterion(collected, inputs["required"])
    used_waivers = set()
    criteria = [_judge_criterion(criterion, grouped[criterion], inputs, used_waivers, check_mode)
                for criterion in sorted(grouped)]
    criteria.sort(key=lambda c: (_outcome_rank(c["outcome"]), c["criterion"]))
    verdict, verdict_reasons, missing_hosts = _decide(criteria, collected, inputs["expected"], inputs["input_errors"])
    # An expired waiver waives nothing: said where the play's failure message (what AWX shows) says why.
    verdict_reasons.extend("%s[%d] for %s expired on %s and was ignored"
                           % (names["waivers"], w["index"], w["criterion"], w["expires"]) for w in inputs["expired"])
    applied, unused = _waiver_use(inputs["active"], used_waivers, criteria)
    report = {
        "schema_version": SCHEMA_VERSION,
        "verdict": verdict,
        "mode": "check" if check_mode else "normal",
        "release": redact_text(str(release or ""), secrets),
        "generated_at": now.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reasons": verdict_reasons,
        "failing": _with_outcome(criteria, OUTCOME_FAIL),
        "inconclusive": _with_outcome(criteria, OUTCOME_INCONCLUSIVE),
        "waived": _with_outcome(criteria, OUTCOME_WAIVED),
        "advisory": _with_outcome(criteria, OUTCOME_ADVISORY),
        "counts": _counts(collected, criteria),
        "expected_hosts": inputs["expected"],
        "missing_hosts": missing_hosts,
        "criteria": criteria,
        "waivers": {"applied": applied, "expired": inputs["expired"], "unused": unused},
        "input_errors": inputs["input_errors"],
        "notes": [redact_text(n, secrets) for n in inputs["notes"]],
    }
    return redact(report, secrets)


def _public_record(record):
    return {
        "host": record["host"],
        "name": record["name"],
        "status": record["status"],
        "blocking": record["effective_blocking"],
        "waived": record["waived"],
        "waiver": record["waiver"],
        "check_mode_skip": record["check_mode_skip"],
        "summary": record["summary"],
        "evidence": record["evidence"],
        "duration_ms": record["duration_ms"],
        "source": record["source"],
    }


# ---------------------------------------------------------------------------------------------

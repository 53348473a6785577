# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gate's decision and its reports: many check records -> one verdict.

Pure logic (standard library only): the ``gate`` action plugin calls it on the controller and the
unit tests call it directly. Nothing here talks to a host.

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
import json
import os
import re
import tempfile
import xml.etree.ElementTree as ET

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    CRITERION_PATTERN,
    ERROR,
    FAIL,
    PASS,
    SKIPPED,
    STATUSES,
    worst_status,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import (
    redact,
    redact_text,
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
REPORT_FILES = {"json": "gonogo.json", "markdown": "gonogo.md", "junit": "junit.xml"}
SCHEMA_VERSION = 1

_RECORD_FIELDS = frozenset(("criterion", "name", "status", "blocking", "summary", "evidence", "duration_ms", "host"))
_WAIVER_FIELDS = frozenset(("criterion", "reason", "expires", "host", "approved_by", "ticket"))
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CHECK_MODE_TEXT = re.compile(r"check[ _-]?mode", re.IGNORECASE)
_XML_ILLEGAL = re.compile(u"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SUMMARY_LIMIT = 200
_EVIDENCE_LIMIT = 240
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
        "host": host, "source": where, "malformed": False,
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

def skipped_for_check_mode(record):
    """A skipped record that says it was skipped because of check mode: ``evidence.check_mode``
    true, or a summary that mentions check mode."""
    if record["status"] != SKIPPED:
        return False
    evidence = record.get("evidence") or {}
    if isinstance(evidence, dict) and evidence.get("check_mode") is True:
        return True
    return bool(_CHECK_MODE_TEXT.search(record.get("summary") or ""))


def _waiver_for(record, waivers):
    for waiver in waivers:
        if waiver["criterion"] != record["criterion"]:
            continue
        if waiver["host"] is None or waiver["host"] == record["host"]:
            return waiver
    return None


def _host_label(host):
    return host if host else "-"


def _outcome_rank(outcome):
    return OUTCOMES.index(outcome)


def _pick_worst(records):
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
    hosts = sorted(set(_host_label(r["host"]) for r in chosen))
    worst = _pick_worst(chosen)
    text = worst["summary"] or worst["status"]
    if len(hosts) > 1 or hosts != ["-"]:
        text = "%s: %s" % (", ".join(hosts), text)
    return _truncate(text, _SUMMARY_LIMIT)


def _count(number, singular, plural=None):
    return "%d %s" % (number, singular if number == 1 else (plural or singular + "s"))


def _truncate(text, limit):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def evaluate(records=None, results=None, waivers=None, advisory=None, required_criteria=None,
             check_mode=False, release="", now=None, secrets=(), expected_hosts=None):
    """Decide. Returns the report (what ``gonogo.json`` holds). ``expected_hosts``: hosts that must
    each have reported at least one real outcome (a host that failed or became unreachable before
    its checks ran is not silently left out)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=datetime.timezone.utc)
    today = now.astimezone(datetime.timezone.utc).date()
    secrets = [s for s in (secrets or ()) if s]

    collected, input_errors, notes = collect(to_plain(records), to_plain(results), secrets=secrets)
    active, expired, waiver_errors = parse_waivers(to_plain(waivers), today, secrets=secrets)
    advisory_ids, advisory_errors = _check_ids(to_plain(advisory), "advisory")
    required_ids, required_errors = _check_ids(to_plain(required_criteria), "required_criteria")
    expected, host_errors = _check_hosts(to_plain(expected_hosts))
    input_errors = [redact_text(e, secrets)
                    for e in input_errors + waiver_errors + advisory_errors + required_errors + host_errors]

    by_criterion = {}
    for record in collected:
        by_criterion.setdefault(record["criterion"], []).append(record)
    for criterion in required_ids:
        by_criterion.setdefault(criterion, [])

    used_waivers = set()
    criteria = []
    for criterion in sorted(by_criterion):
        recs = by_criterion[criterion]
        forced_advisory = criterion in advisory_ids
        required = criterion in required_ids
        for record in recs:
            record["effective_blocking"] = bool(record["blocking"]) and not forced_advisory
            record["check_mode_skip"] = record["effective_blocking"] and skipped_for_check_mode(record)
            waiver = None
            if record["effective_blocking"] and (record["status"] in (FAIL, ERROR) or record["check_mode_skip"]):
                waiver = _waiver_for(record, active)
            record["waived"] = waiver is not None
            record["waiver"] = waiver["index"] if waiver else None
            if waiver:
                used_waivers.add(waiver["index"])
            record["gating"] = record["effective_blocking"] and not record["waived"]

        gating_statuses = set(r["status"] for r in recs if r["gating"])
        # A blocking failure anywhere makes the criterion fail (NO-GO) even when another host erred:
        # the same rule as the verdict's.
        gating_status = FAIL if FAIL in gating_statuses else (ERROR if ERROR in gating_statuses else None)
        real = [r for r in recs if r["status"] in (PASS, FAIL, ERROR)]
        missing = required and not real
        missing_waiver = None
        if missing:
            for waiver in active:
                if waiver["criterion"] == criterion and waiver["host"] is None:
                    missing_waiver = waiver
                    used_waivers.add(waiver["index"])
                    break
        check_mode_unverified = any(r["check_mode_skip"] and r["gating"] for r in recs)
        blocking = (not forced_advisory) and (required or any(r["blocking"] for r in recs))

        reasons = []
        if gating_status == FAIL:
            outcome = OUTCOME_FAIL
        elif gating_status == ERROR or (missing and not missing_waiver) or check_mode_unverified:
            outcome = OUTCOME_INCONCLUSIVE
        elif any(r["waived"] for r in recs) or missing_waiver:
            outcome = OUTCOME_WAIVED
        elif any(r["status"] in (FAIL, ERROR) and not r["effective_blocking"] for r in recs):
            outcome = OUTCOME_ADVISORY
        elif any(r["status"] == PASS for r in recs):
            outcome = OUTCOME_PASS
        else:
            outcome = OUTCOME_SKIPPED
        if any(r["gating"] and r["status"] == ERROR for r in recs):
            reasons.append("error: the check could not decide")
        if missing and not missing_waiver:
            skipped = [r for r in recs if r["status"] == SKIPPED]
            if any(skipped_for_check_mode(r) for r in skipped) or (check_mode and skipped):
                reasons.append("required, but skipped in check mode: not verified")
            elif skipped:
                reasons.append("required, but every record of it was skipped")
            else:
                reasons.append("required, but no check reported it")
        if check_mode_unverified:
            reasons.append("skipped because of check mode: not verified")
        if missing_waiver:
            reasons.append("required and missing, waived until %s" % missing_waiver["expires"])

        statuses = [r["status"] for r in recs]
        status = worst_status(statuses) if statuses else MISSING
        summary = _criterion_summary(recs, outcome)
        if not summary and reasons:
            summary = reasons[0]
        criteria.append({
            "criterion": criterion,
            "outcome": outcome,
            "status": status,
            "blocking": blocking,
            "required": required,
            "advisory_override": forced_advisory,
            "waived": outcome == OUTCOME_WAIVED,
            "hosts": sorted(set(_host_label(r["host"]) for r in recs)),
            "summary": summary,
            "reasons": reasons,
            "waiver": (missing_waiver["index"] if missing_waiver else None),
            "missing": bool(missing and not missing_waiver),
            "records": [_public_record(r) for r in recs],
        })

    criteria.sort(key=lambda c: (_outcome_rank(c["outcome"]), c["criterion"]))
    failing = [c["criterion"] for c in criteria if c["outcome"] == OUTCOME_FAIL]
    inconclusive = [c["criterion"] for c in criteria if c["outcome"] == OUTCOME_INCONCLUSIVE]
    waived = [c["criterion"] for c in criteria if c["outcome"] == OUTCOME_WAIVED]
    advisory_findings = [c["criterion"] for c in criteria if c["outcome"] == OUTCOME_ADVISORY]
    verified = [c for c in criteria if c["blocking"] and c["outcome"] == OUTCOME_PASS]

    verdict_reasons = []
    if failing:
        verdict = NO_GO
        verdict_reasons.append("%s failed: %s" % (_count(len(failing), "blocking criterion", "blocking criteria"), ", ".join(failing)))
    else:
        verdict = GO
    if inconclusive:
        verdict = verdict if verdict == NO_GO else INCONCLUSIVE
        verdict_reasons.append("%s inconclusive: %s"
                               % (_count(len(inconclusive), "blocking criterion", "blocking criteria"), ", ".join(inconclusive)))
    reporting_hosts = set(r["host"] for r in collected if r["host"] and r["status"] in (PASS, FAIL, ERROR))
    missing_hosts = [host for host in expected if host not in reporting_hosts]
    if missing_hosts:
        verdict = verdict if verdict == NO_GO else INCONCLUSIVE
        verdict_reasons.append("%s reported no result: %s" % (_count(len(missing_hosts), "expected host"),
                                                              ", ".join(missing_hosts)))
    if input_errors:
        verdict = verdict if verdict == NO_GO else INCONCLUSIVE
        verdict_reasons.append("%s: the gate cannot vouch for malformed input" % _count(len(input_errors), "input error"))
    if not verified and verdict == GO:
        verdict = INCONCLUSIVE
        verdict_reasons.append("no blocking criterion was verified (no passing blocking record)")
    if verdict == GO:
        verdict_reasons.append("%s passed%s"
                               % (_count(len(verified), "blocking criterion", "blocking criteria"),
                                  (", %d waived" % len(waived)) if waived else ""))

    waiver_by_index = dict((w["index"], w) for w in active)
    applied = []
    for index in sorted(used_waivers):
        waiver = dict(waiver_by_index[index])
        waiver["covers"] = sorted(set(
            "%s@%s" % (c["criterion"], _host_label(r["host"]))
            for c in criteria for r in c["records"] if r["waiver"] == index
        ) | set(c["criterion"] for c in criteria if c["waiver"] == index))
        applied.append(waiver)
    unused = [w for w in active if w["index"] not in used_waivers]

    record_counts = dict((s, 0) for s in STATUSES)
    for record in collected:
        record_counts[record["status"]] += 1
    record_counts["total"] = len(collected)
    criteria_counts = dict((o, 0) for o in OUTCOMES)
    for criterion in criteria:
        criteria_counts[criterion["outcome"]] += 1
    criteria_counts["total"] = len(criteria)

    report = {
        "schema_version": SCHEMA_VERSION,
        "verdict": verdict,
        "mode": "check" if check_mode else "normal",
        "release": redact_text(str(release or ""), secrets),
        "generated_at": now.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reasons": verdict_reasons,
        "failing": failing,
        "inconclusive": inconclusive,
        "waived": waived,
        "advisory": advisory_findings,
        "counts": {
            "criteria": criteria_counts,
            "records": record_counts,
            "hosts": len(set(r["host"] for r in collected if r["host"])),
        },
        "expected_hosts": expected,
        "missing_hosts": missing_hosts,
        "criteria": criteria,
        "waivers": {"applied": applied, "expired": expired, "unused": unused},
        "input_errors": input_errors,
        "notes": [redact_text(n, secrets) for n in notes],
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
# Messages and stats
# ---------------------------------------------------------------------------------------------

def message(report, paths=None):
    """One readable line: the verdict and, on NO-GO, each failing / inconclusive criterion with its
    evidence summary."""
    parts = []
    label = report["verdict"]
    if report.get("release"):
        label += " for release %s" % report["release"]
    if report.get("mode") == "check":
        label += " (check mode)"
    parts.append("%s: %s" % (label, "; ".join(report["reasons"])))
    for criterion in report["criteria"]:
        if criterion["outcome"] == OUTCOME_FAIL:
            parts.append("FAILED %s: %s" % (criterion["criterion"], criterion["summary"]))
    for criterion in report["criteria"]:
        if criterion["outcome"] == OUTCOME_INCONCLUSIVE:
            why = criterion["summary"] or "; ".join(criterion["reasons"])
            if criterion["reasons"] and criterion["summary"] and criterion["reasons"][0] not in criterion["summary"]:
                why = "%s (%s)" % (criterion["summary"], criterion["reasons"][0])
            parts.append("INCONCLUSIVE %s: %s" % (criterion["criterion"], _truncate(why, _SUMMARY_LIMIT)))
    if report.get("missing_hosts"):
        parts.append("NO RESULT from %s" % ", ".join(report["missing_hosts"]))
    for error in report["input_errors"][:10]:
        parts.append("INPUT %s" % error)
    if len(report["input_errors"]) > 10:
        parts.append("INPUT ... and %d more" % (len(report["input_errors"]) - 10))
    if paths and paths.get("markdown"):
        parts.append("report: %s" % paths["markdown"])
    return " | ".join(parts)


def stats(report, paths=None):
    """What the gate publishes with set_stats semantics for AWX workflows."""
    paths = paths or {}
    return {
        "gonogo_verdict": report["verdict"],
        "gonogo_failing": list(report["failing"]),
        "gonogo_report": {
            "release": report["release"],
            "mode": report["mode"],
            "generated_at": report["generated_at"],
            "inconclusive": list(report["inconclusive"]),
            "waived": list(report["waived"]),
            "missing_hosts": list(report.get("missing_hosts") or []),
            "json": paths.get("json"),
            "markdown": paths.get("markdown"),
            "junit": paths.get("junit"),
        },
    }


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

def render_json(report):
    return json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"


def _cell(text, limit=None):
    text = " ".join(str(text if text is not None else "").split())
    if limit:
        text = _truncate(text, limit)
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
            .replace("`", "'")) or " "


def _evidence_text(evidence):
    if not evidence:
        return ""
    try:
        text = json.dumps(evidence, sort_keys=True, separators=(", ", ": "), default=str)
    except (TypeError, ValueError):
        text = str(evidence)
    return _truncate(text, _EVIDENCE_LIMIT)


_BANNERS = {
    GO: "GO: the release may go out.",
    NO_GO: "NO-GO: at least one blocking criterion failed.",
    INCONCLUSIVE: "NO-GO (inconclusive): nothing failed, but the gate could not verify everything.",
}


def render_markdown(report):
    lines = []
    verdict = report["verdict"]
    lines.append("# Release gate: %s" % verdict)
    lines.append("")
    lines.append("> **%s**" % _cell(_BANNERS[verdict]))
    for reason in report["reasons"]:
        lines.append("> - %s" % _cell(reason))
    lines.append("")
    counts = report["counts"]["criteria"]
    lines.append("| | |")
    lines.append("|---|---|")
    lines.append("| Release | %s |" % _cell(report["release"] or "(not given)"))
    lines.append("| Verdict | **%s** |" % verdict)
    lines.append("| Mode | %s |" % report["mode"])
    lines.append("| Generated | %s |" % report["generated_at"])
    lines.append("| Criteria | %d: %s |" % (counts["total"], ", ".join(
        "%d %s" % (counts[o], o) for o in OUTCOMES if counts[o])))
    records = report["counts"]["records"]
    lines.append("| Records | %d: %s |" % (records["total"], ", ".join(
        "%d %s" % (records[s], s) for s in STATUSES if records[s])))
    lines.append("| Hosts | %d |" % report["counts"]["hosts"])
    lines.append("")

    problem = [c for c in report["criteria"] if c["outcome"] in (OUTCOME_FAIL, OUTCOME_INCONCLUSIVE)]
    lines.append("## Failing and inconclusive criteria")
    lines.append("")
    if problem:
        lines.append("| Criterion | Outcome | Host | Status | Summary | Key evidence |")
        lines.append("|---|---|---|---|---|---|")
        for criterion in problem:
            shown = [r for r in criterion["records"] if r["blocking"] and not r["waived"]
                     and (r["status"] in (FAIL, ERROR) or r["check_mode_skip"])]
            if not shown:
                lines.append("| %s | **%s** | - | %s | %s | |" % (
                    _cell(criterion["criterion"]), criterion["outcome"].upper(), criterion["status"],
                    _cell("; ".join(criterion["reasons"]) or criterion["summary"], _SUMMARY_LIMIT)))
                continue
            for record in shown:
                lines.append("| %s | **%s** | %s | %s | %s | %s |" % (
                    _cell(criterion["criterion"]), criterion["outcome"].upper(), _cell(_host_label(record["host"])),
                    record["status"], _cell(record["summary"], _SUMMARY_LIMIT),
                    _cell(_evidence_text(record["evidence"]))))
    else:
        lines.append("None.")
    lines.append("")

    waived = [c for c in report["criteria"] if c["outcome"] == OUTCOME_WAIVED]
    applied = report["waivers"]["applied"]
    if waived or applied:
        lines.append("## Waived")
        lines.append("")
        lines.append("| Criterion | Covers | Reason | Expires | Approved by | Ticket |")
        lines.append("|---|---|---|---|---|---|")
        for waiver in applied:
            lines.append("| %s | %s | %s | %s | %s | %s |" % (
                _cell(waiver["criterion"]), _cell(", ".join(waiver["covers"])), _cell(waiver["reason"], _SUMMARY_LIMIT),
                waiver["expires"], _cell(waiver.get("approved_by") or "-"), _cell(waiver.get("ticket") or "-")))
        lines.append("")

    advisory = [c for c in report["criteria"] if c["outcome"] == OUTCOME_ADVISORY]
    if advisory:
        lines.append("## Advisory findings (reported, not gating)")
        lines.append("")
        lines.append("| Criterion | Status | Hosts | Summary |")
        lines.append("|---|---|---|---|")
        for criterion in advisory:
            lines.append("| %s | %s | %s | %s |" % (
                _cell(criterion["criterion"]), criterion["status"], _cell(", ".join(criterion["hosts"])),
                _cell(criterion["summary"], _SUMMARY_LIMIT)))
        lines.append("")

    if report["waivers"]["expired"] or report["waivers"]["unused"]:
        lines.append("## Waivers not applied")
        lines.append("")
        for waiver in report["waivers"]["expired"]:
            lines.append("- waivers[%d] for %s expired on %s: ignored" % (waiver["index"], _cell(waiver["criterion"]), waiver["expires"]))
        for waiver in report["waivers"]["unused"]:
            lines.append("- waivers[%d] for %s (until %s): nothing to waive" % (waiver["index"], _cell(waiver["criterion"]), waiver["expires"]))
        lines.append("")

    if report.get("missing_hosts"):
        lines.append("## Expected hosts without results")
        lines.append("")
        for host in report["missing_hosts"]:
            lines.append("- %s: no check reported a result for this host (failed or unreachable before its checks ran?)"
                         % _cell(host))
        lines.append("")

    if report["input_errors"]:
        lines.append("## Input errors")
        lines.append("")
        for error in report["input_errors"]:
            lines.append("- %s" % _cell(error))
        lines.append("")

    lines.append("## All criteria")
    lines.append("")
    lines.append("| Criterion | Outcome | Status | Blocking | Required | Hosts | Summary |")
    lines.append("|---|---|---|---|---|---|---|")
    for criterion in report["criteria"]:
        lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            _cell(criterion["criterion"]), criterion["outcome"], criterion["status"],
            "yes" if criterion["blocking"] else "no", "yes" if criterion["required"] else "no",
            _cell(", ".join(criterion["hosts"]) or "-"), _cell(criterion["summary"], _SUMMARY_LIMIT)))
    lines.append("")
    return "\n".join(lines)


def _xml_text(text):
    return _XML_ILLEGAL.sub("?", str(text if text is not None else ""))


def render_junit(report):
    """JUnit XML: one testcase per criterion x host (fail -> <failure>, error -> <error>, skipped,
    waived and advisory findings -> <skipped> with the reason)."""
    cases = []
    for criterion in report["criteria"]:
        by_host = {}
        for record in criterion["records"]:
            by_host.setdefault(record["host"], []).append(record)
        if not by_host:
            if criterion["missing"]:
                cases.append((criterion, None, [], ERROR, "; ".join(criterion["reasons"]) or "no result", "missing"))
            else:
                cases.append((criterion, None, [], SKIPPED, "waived: " + "; ".join(criterion["reasons"]), "waived"))
            continue
        for host in sorted(by_host, key=lambda h: (h is not None, h or "")):
            recs = by_host[host]
            gating = [r for r in recs if r["blocking"] and not r["waived"]]
            worst_gating = worst_status([r["status"] for r in gating]) if gating else None
            worst = _pick_worst(recs)
            text = "; ".join(r["summary"] for r in recs if r["summary"]) or worst["status"]
            if worst_gating == FAIL:
                kind, info = FAIL, "fail"
            elif criterion["missing"]:
                kind, info = ERROR, "missing"
                text = "; ".join(criterion["reasons"]) + "; " + text
            elif worst_gating == ERROR:
                kind, info = ERROR, "error"
            elif any(r["check_mode_skip"] for r in gating):
                kind, info = ERROR, "check_mode"
                text = "skipped because of check mode: not verified; " + text
            elif any(r["waived"] for r in recs):
                kind, info = SKIPPED, "waived"
                text = "waived: " + text
            elif any(r["status"] in (FAIL, ERROR) for r in recs):
                kind, info = SKIPPED, "advisory"
                text = "advisory %s (not gating): %s" % (worst["status"], text)
            elif any(r["status"] == PASS for r in recs):
                kind, info = PASS, "pass"
            else:
                kind, info = SKIPPED, "skipped"
            cases.append((criterion, host, recs, kind, text, info))

    suite = ET.Element("testsuite")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for criterion, host, recs, kind, text, info in cases:
        counts["tests"] += 1
        name = criterion["criterion"] if host is None else "%s [%s]" % (criterion["criterion"], host)
        seconds = sum(r["duration_ms"] for r in recs) / 1000.0
        total_time += seconds
        case = ET.SubElement(suite, "testcase", {
            "classname": _xml_text("gonogo.%s" % criterion["criterion"].split(".", 1)[0]),
            "name": _xml_text(name),
            "time": "%.3f" % seconds,
        })
        short = _xml_text(_truncate(text, 500))
        details = _xml_text("\n".join(
            "%s %s: %s%s" % (_host_label(r["host"]), r["status"], r["summary"],
                             ("\nevidence: %s" % _evidence_text(r["evidence"])) if r["evidence"] else "")
            for r in recs) or "; ".join(criterion["reasons"]))
        if kind == FAIL:
            node = ET.SubElement(case, "failure", {"message": short, "type": info})
            node.text = details
            counts["failures"] += 1
        elif kind == ERROR:
            node = ET.SubElement(case, "error", {"message": short, "type": info})
            node.text = details
            counts["errors"] += 1
        elif kind == SKIPPED:
            ET.SubElement(case, "skipped", {"message": short})
            counts["skipped"] += 1
        if kind == PASS and text:
            out = ET.SubElement(case, "system-out")
            out.text = details

    for host in report.get("missing_hosts") or []:
        counts["tests"] += 1
        counts["errors"] += 1
        case = ET.SubElement(suite, "testcase", {"classname": "gonogo.gate", "name": _xml_text("gate.hosts [%s]" % host),
                                                 "time": "0.000"})
        ET.SubElement(case, "error", {"message": "no check reported a result for this host", "type": "missing_host"})

    if report["input_errors"]:
        counts["tests"] += 1
        counts["errors"] += 1
        case = ET.SubElement(suite, "testcase", {"classname": "gonogo.gate", "name": "gate.input", "time": "0.000"})
        node = ET.SubElement(case, "error", {"message": _xml_text(_truncate(report["input_errors"][0], 500)),
                                             "type": "input"})
        node.text = _xml_text("\n".join(report["input_errors"]))

    name = "gonogo" + (" %s" % report["release"] if report["release"] else "")
    suite.set("name", _xml_text(name))
    for key in ("tests", "failures", "errors", "skipped"):
        suite.set(key, str(counts[key]))
    suite.set("time", "%.3f" % total_time)
    suite.set("timestamp", report["generated_at"])
    props = ET.Element("properties")
    for key in ("verdict", "release", "mode", "generated_at"):
        ET.SubElement(props, "property", {"name": key, "value": _xml_text(report[key])})
    suite.insert(0, props)
    root = ET.Element("testsuites", {
        "name": _xml_text(name), "tests": str(counts["tests"]), "failures": str(counts["failures"]),
        "errors": str(counts["errors"]), "skipped": str(counts["skipped"]), "time": "%.3f" % total_time,
    })
    root.append(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

def write_reports(report, directory):
    """Write gonogo.json, gonogo.md and junit.xml into ``directory``: every file to a temporary
    name first, then renamed into place, so a reader never sees a half-written report. Returns the
    paths by kind (json, markdown, junit)."""
    contents = {
        "json": render_json(report),
        "markdown": render_markdown(report),
        "junit": render_junit(report),
    }
    directory = os.path.abspath(directory)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    umask = os.umask(0)
    os.umask(umask)
    temps = {}
    try:
        for kind in ("json", "markdown", "junit"):
            fd, temp = tempfile.mkstemp(prefix=".%s." % REPORT_FILES[kind], suffix=".tmp", dir=directory)
            temps[kind] = temp
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(contents[kind])
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, 0o666 & ~umask)
        paths = {}
        for kind in ("json", "markdown", "junit"):
            final = os.path.join(directory, REPORT_FILES[kind])
            os.replace(temps.pop(kind), final)
            paths[kind] = final
        return paths
    finally:
        for temp in temps.values():
            try:
                os.unlink(temp)
            except OSError:
                pass

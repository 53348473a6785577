# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gate's reports: the task's one-line message, the set_stats data, and the writers of
gonogo.json, gonogo.md (Markdown) and junit.xml (JUnit XML) from the report ``decision.evaluate`` made.
A canary's SLO records are shown per stage with their figures (stage_measurements.py reads them).

Controller-only, standard library only; the three files are written atomically.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import tempfile
import xml.etree.ElementTree as ET

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import ERROR, FAIL, PASS, SKIPPED, STATUSES, worst_status
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils.decision import (
    GO,
    INCONCLUSIVE,
    NO_GO,
    OUTCOME_ADVISORY,
    OUTCOME_FAIL,
    OUTCOME_INCONCLUSIVE,
    OUTCOME_WAIVED,
    OUTCOMES,
    SUMMARY_LIMIT,
    host_label,
    pick_worst,
    truncate,
)
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils import stage_measurements

REPORT_FILES = {"json": "gonogo.json", "markdown": "gonogo.md", "junit": "junit.xml"}

_XML_ILLEGAL = re.compile(u"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_EVIDENCE_LIMIT = 240


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
            parts.append("INCONCLUSIVE %s: %s" % (criterion["criterion"], truncate(why, SUMMARY_LIMIT)))
    if report.get("missing_hosts"):
        parts.append("NO RESULT from %s" % ", ".join(report["missing_hosts"]))
    for error in report["input_errors"][:10]:
        parts.append("INPUT %s" % error)
    if len(report["input_errors"]) > 10:
        parts.append("INPUT ... and %d more" % (len(report["input_errors"]) - 10))
    if paths and paths.get("markdown"):
        parts.append("report: %s" % paths["markdown"])
    return " | ".join(parts)


STATS_MARKDOWN_LIMIT = 32 * 1024


def findings(report):
    """The failing and inconclusive criteria with their whole summaries (what a workflow node shows)."""
    found = []
    for criterion in report["criteria"]:
        if criterion["outcome"] not in (OUTCOME_FAIL, OUTCOME_INCONCLUSIVE):
            continue
        shown = [r for r in criterion["records"] if r["blocking"] and not r["waived"]
                 and (r["status"] in (FAIL, ERROR) or r["check_mode_skip"])]
        lines = ["%s: %s" % (host_label(r["host"]), r["summary"]) if host_label(r["host"]) != "-" else r["summary"]
                 for r in shown if r["summary"]]
        summary = "; ".join(lines) or criterion["summary"] or "; ".join(criterion["reasons"])
        found.append({"criterion": criterion["criterion"], "outcome": criterion["outcome"],
                      "hosts": list(criterion["hosts"]), "summary": summary})
    return found


def bounded_markdown(text, limit, where=None):
    """``text`` cut at a line boundary so that it and the note saying so fit in ``limit`` bytes (UTF-8).
    Returns (text, cut)."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text, False
    note = "\n\n> **Cut at %d bytes of %d for the job's artifacts;** the whole report is gonogo.md%s.\n" % (
        limit, len(data), " in %s" % where if where else "")
    room = limit - len(note.encode("utf-8"))
    if room <= 0:  # a bound smaller than the note: the note alone, cut to the bound
        return note.encode("utf-8")[:limit].decode("utf-8", "ignore"), True
    head = data[:room].decode("utf-8", "ignore")
    if "\n" in head:
        head = head[:head.rindex("\n")]
    return head + note, True


def stats(report, paths=None, run_dir=None, markdown_limit=STATS_MARKDOWN_LIMIT):
    """What the gate publishes with set_stats semantics for AWX workflows: the verdict, the failing criteria
    (ids, and with their summaries), and gonogo.md bounded to ``markdown_limit`` bytes (0: left out), since
    under AWX the files stay in the job's temporary directory and only these values are kept."""
    paths = paths or {}
    data = {
        "gonogo_verdict": report["verdict"],
        "gonogo_failing": list(report["failing"]),
        "gonogo_findings": findings(report),
        "gonogo_report": {
            "release": report["release"],
            "mode": report["mode"],
            "generated_at": report["generated_at"],
            "inconclusive": list(report["inconclusive"]),
            "waived": list(report["waived"]),
            "missing_hosts": list(report.get("missing_hosts") or []),
            "run_dir": run_dir,
            "json": paths.get("json"),
            "markdown": paths.get("markdown"),
            "junit": paths.get("junit"),
        },
    }
    if markdown_limit:
        text, cut = bounded_markdown(render_markdown(report), markdown_limit, run_dir)
        data["gonogo_markdown"] = text
        data["gonogo_report"]["markdown_cut"] = cut
    return data


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

def render_json(report):
    return json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"


def _cell(text, limit=None):
    text = " ".join(str(text if text is not None else "").split())
    if limit:
        text = truncate(text, limit)
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
            .replace("`", "'")) or " "


def _evidence_text(evidence):
    if not evidence:
        return ""
    try:
        text = json.dumps(evidence, sort_keys=True, separators=(", ", ": "), default=str)
    except (TypeError, ValueError):
        text = str(evidence)
    return truncate(text, _EVIDENCE_LIMIT)


_BANNERS = {
    GO: "GO: the release may go out.",
    NO_GO: "NO-GO: at least one blocking criterion failed.",
    INCONCLUSIVE: "NO-GO (inconclusive): nothing failed, but the gate could not verify everything.",
}


def _md_table(title, columns, rows):
    """A section: its title, a table of ``columns`` with ``rows`` (lists of cells), a blank line."""
    lines = ["## %s" % title, "", "| %s |" % " | ".join(columns), "|%s|" % "|".join("---" for dummy in columns)]
    lines.extend("|%s|" % "|".join(" %s " % cell if cell else " " for cell in row) for row in rows)
    lines.append("")
    return lines


def _md_header(report):
    verdict = report["verdict"]
    lines = ["# Release gate: %s" % verdict, "", "> **%s**" % _cell(_BANNERS[verdict])]
    for reason in report["reasons"]:
        lines.append("> - %s" % _cell(reason))
    lines.append("")
    counts = report["counts"]["criteria"]
    records = report["counts"]["records"]
    lines.extend([
        "| | |",
        "|---|---|",
        "| Release | %s |" % _cell(report["release"] or "(not given)"),
        "| Verdict | **%s** |" % verdict,
        "| Mode | %s |" % report["mode"],
        "| Generated | %s |" % report["generated_at"],
        "| Criteria | %d: %s |" % (counts["total"], ", ".join("%d %s" % (counts[o], o) for o in OUTCOMES if counts[o])),
        "| Records | %d: %s |" % (records["total"], ", ".join(
            "%d %s" % (records[s], s) for s in STATUSES if records[s])),
        "| Hosts | %d |" % report["counts"]["hosts"],
        "",
    ])
    return lines


def _record_where(record):
    """The record's host, and its canary stage when it has one: ``app1, stage 25 %``."""
    weight = stage_measurements.stage_of(record)
    if weight is None:
        return host_label(record["host"])
    return "%s, %s" % (host_label(record["host"]), stage_measurements.stage_label(weight))


def _md_problem_rows(criterion):
    shown = [r for r in criterion["records"] if r["blocking"] and not r["waived"]
             and (r["status"] in (FAIL, ERROR) or r["check_mode_skip"])]
    if not shown:
        return [[_cell(criterion["criterion"]), "**%s**" % criterion["outcome"].upper(), "-", criterion["status"],
                 _cell("; ".join(criterion["reasons"]) or criterion["summary"], SUMMARY_LIMIT), ""]]
    return [[_cell(criterion["criterion"]), "**%s**" % criterion["outcome"].upper(), _cell(_record_where(r)),
             r["status"], _cell(r["summary"], SUMMARY_LIMIT), _cell(_evidence_text(r["evidence"]))] for r in shown]


def _md_problems(report):
    problem = [c for c in report["criteria"] if c["outcome"] in (OUTCOME_FAIL, OUTCOME_INCONCLUSIVE)]
    title = "Failing and inconclusive criteria"
    if not problem:
        return ["## %s" % title, "", "None.", ""]
    rows = [row for criterion in problem for row in _md_problem_rows(criterion)]
    return _md_table(title, ("Criterion", "Outcome", "Host", "Status", "Summary", "Key evidence"), rows)


def _md_stage(group):
    title = stage_measurements.stage_label(group["weight"]).capitalize() if group["weight"] is not None \
        else "SLO measurements without a stage"
    if group["host"]:
        title += " on %s" % group["host"]
    step = group["step"]
    lines = ["### %s%s" % (_cell(title), ": %s" % step["status"] if step else ""), ""]
    if step:
        lines.extend(["%s" % _cell(step["summary"], SUMMARY_LIMIT), ""])
    if group["rows"]:
        columns = stage_measurements.COLUMNS
        lines.extend(["| %s |" % " | ".join(columns), "|%s|" % "|".join("---" for dummy in columns)])
        lines.extend("| %s |" % " | ".join(_cell(cell, SUMMARY_LIMIT) for cell in stage_measurements.row_cells(item))
                     for item in group["rows"])
    else:
        lines.append("No SLO measurement was recorded in this stage.")
    if group["others"]:
        lines.extend(["", "Also checked: %s" % _cell(", ".join(
            "%s %s" % (name, status) for dummy, name, status in group["others"]))])
    lines.append("")
    return lines


def _md_stages(report):
    """A table per canary stage (per host) of its SLO records' figures; nothing when the report has none."""
    groups = stage_measurements.stages(report)
    if not groups:
        return []
    lines = ["## Measurements by stage", "",
             "The last look of each SLO record: the canary's value, the stable (baseline) value, the threshold and "
             "the requests each served.", ""]
    for group in groups:
        lines.extend(_md_stage(group))
    return lines


def _md_waived(report):
    waived = [c for c in report["criteria"] if c["outcome"] == OUTCOME_WAIVED]
    applied = report["waivers"]["applied"]
    if not (waived or applied):
        return []
    rows = [[_cell(w["criterion"]), _cell(", ".join(w["covers"])), _cell(w["reason"], SUMMARY_LIMIT), w["expires"],
             _cell(w.get("approved_by") or "-"), _cell(w.get("ticket") or "-")] for w in applied]
    return _md_table("Waived", ("Criterion", "Covers", "Reason", "Expires", "Approved by", "Ticket"), rows)


def _md_advisory(report):
    advisory = [c for c in report["criteria"] if c["outcome"] == OUTCOME_ADVISORY]
    if not advisory:
        return []
    rows = [[_cell(c["criterion"]), c["status"], _cell(", ".join(c["hosts"])), _cell(c["summary"], SUMMARY_LIMIT)]
            for c in advisory]
    return _md_table("Advisory findings (reported, not gating)", ("Criterion", "Status", "Hosts", "Summary"), rows)


def _md_unapplied_waivers(report):
    if not (report["waivers"]["expired"] or report["waivers"]["unused"]):
        return []
    lines = ["## Waivers not applied", ""]
    for waiver in report["waivers"]["expired"]:
        lines.append("- waivers[%d] for %s expired on %s: ignored" % (waiver["index"], _cell(waiver["criterion"]), waiver["expires"]))
    for waiver in report["waivers"]["unused"]:
        lines.append("- waivers[%d] for %s (until %s): nothing to waive" % (waiver["index"], _cell(waiver["criterion"]), waiver["expires"]))
    lines.append("")
    return lines


def _md_missing_hosts(report):
    if not report.get("missing_hosts"):
        return []
    lines = ["## Expected hosts without results", ""]
    for host in report["missing_hosts"]:
        lines.append("- %s: no check reported a result for this host (failed or unreachable before its checks ran?)"
                     % _cell(host))
    lines.append("")
    return lines


def _md_input_errors(report):
    if not report["input_errors"]:
        return []
    return ["## Input errors", ""] + ["- %s" % _cell(error) for error in report["input_errors"]] + [""]


def _md_all_criteria(report):
    rows = [[_cell(c["criterion"]), c["outcome"], c["status"], "yes" if c["blocking"] else "no",
             "yes" if c["required"] else "no", _cell(", ".join(c["hosts"]) or "-"), _cell(c["summary"], SUMMARY_LIMIT)]
            for c in report["criteria"]]
    return _md_table("All criteria", ("Criterion", "Outcome", "Status", "Blocking", "Required", "Hosts", "Summary"), rows)


_MD_SECTIONS = (_md_header, _md_problems, _md_stages, _md_waived, _md_advisory, _md_unapplied_waivers, _md_missing_hosts,
                _md_input_errors, _md_all_criteria)


def render_markdown(report):
    lines = []
    for section in _MD_SECTIONS:
        lines.extend(section(report))
    return "\n".join(lines)


def _xml_text(text):
    return _XML_ILLEGAL.sub("?", str(text if text is not None else ""))


def _junit_host_case(criterion, recs):
    """What one criterion x host becomes: (kind, type, text)."""
    gating = [r for r in recs if r["blocking"] and not r["waived"]]
    worst_gating = worst_status([r["status"] for r in gating]) if gating else None
    worst = pick_worst(recs)
    text = "; ".join(r["summary"] for r in recs if r["summary"]) or worst["status"]
    if worst_gating == FAIL:
        return FAIL, "fail", text
    if criterion["missing"]:
        return ERROR, "missing", "; ".join(criterion["reasons"]) + "; " + text
    if worst_gating == ERROR:
        return ERROR, "error", text
    if any(r["check_mode_skip"] for r in gating):
        return ERROR, "check_mode", "skipped because of check mode: not verified; " + text
    if any(r["waived"] for r in recs):
        return SKIPPED, "waived", "waived: " + text
    if any(r["status"] in (FAIL, ERROR) for r in recs):
        return SKIPPED, "advisory", "advisory %s (not gating): %s" % (worst["status"], text)
    if any(r["status"] == PASS for r in recs):
        return PASS, "pass", text
    return SKIPPED, "skipped", text


def _case_order(key):
    host, weight = key
    return (host is not None, host or "", weight is not None, weight or 0)


def _junit_cases(report):
    """One case per criterion x host x canary stage (records without a stage make one case per host):
    (criterion, host, stage weight or None, records, kind, text, type)."""
    cases = []
    for criterion in report["criteria"]:
        by_case = {}
        for record in criterion["records"]:
            by_case.setdefault((record["host"], stage_measurements.stage_of(record)), []).append(record)
        if not by_case:
            if criterion["missing"]:
                cases.append((criterion, None, None, [], ERROR, "; ".join(criterion["reasons"]) or "no result", "missing"))
            else:
                cases.append((criterion, None, None, [], SKIPPED, "waived: " + "; ".join(criterion["reasons"]), "waived"))
            continue
        for key in sorted(by_case, key=_case_order):
            kind, info, text = _junit_host_case(criterion, by_case[key])
            cases.append((criterion, key[0], key[1], by_case[key], kind, text, info))
    return cases


def _junit_record_text(criterion, record, weight):
    text = "%s %s: %s" % (host_label(record["host"]), record["status"], record["summary"])
    if stage_measurements.is_slo_record(criterion["criterion"], record):
        item = stage_measurements.row(criterion["criterion"], record)
        where = stage_measurements.stage_label(weight) if weight is not None else "measured"
        text += "\n%s: %s" % (where, stage_measurements.figures_line(item))
    if record["evidence"]:
        text += "\nevidence: %s" % _evidence_text(record["evidence"])
    return text


def _junit_properties(case, criterion, recs, weight):
    """The stage and each SLO record's figures, for a machine reading the JUnit file."""
    props = []
    if weight is not None:
        props.append(("stage_weight", str(weight)))
    for record in recs:
        if stage_measurements.is_slo_record(criterion["criterion"], record):
            item = stage_measurements.row(criterion["criterion"], record)
            for key in ("canary", "stable", "threshold", "requests"):
                props.append(("%s.%s" % (record["name"], key), item[key]))
    if props:
        node = ET.SubElement(case, "properties")
        for name, value in props:
            ET.SubElement(node, "property", {"name": _xml_text(name), "value": _xml_text(value)})


def _junit_testcase(suite, counts, case_data, stage_groups):
    """Add one testcase; returns its time in seconds."""
    criterion, host, weight, recs, kind, text, info = case_data
    counts["tests"] += 1
    where = [h for h in (host,) if h is not None]
    if weight is not None:
        where.append(stage_measurements.stage_label(weight))
    name = criterion["criterion"] + (" [%s]" % ", ".join(where) if where else "")
    seconds = sum(r["duration_ms"] for r in recs) / 1000.0
    case = ET.SubElement(suite, "testcase", {
        "classname": _xml_text("gonogo.%s" % criterion["criterion"].split(".", 1)[0]),
        "name": _xml_text(name),
        "time": "%.3f" % seconds,
    })
    _junit_properties(case, criterion, recs, weight)
    short = _xml_text(truncate(text, 500))
    details = "\n".join(_junit_record_text(criterion, r, weight) for r in recs) or "; ".join(criterion["reasons"])
    group = stage_groups.get((host, weight)) if weight is not None else None
    if group is not None and criterion["criterion"] == stage_measurements.STEP_CRITERION and group["rows"]:
        details += "\n\nSLO measurements of %s (last look):\n%s" % (
            stage_measurements.stage_label(weight), stage_measurements.text_table(group["rows"]))
    details = _xml_text(details)
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
    return seconds


def _junit_gate_cases(suite, counts, report):
    """The gate's own cases: expected hosts without a result, malformed input."""
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
        node = ET.SubElement(case, "error", {"message": _xml_text(truncate(report["input_errors"][0], 500)),
                                             "type": "input"})
        node.text = _xml_text("\n".join(report["input_errors"]))


def render_junit(report):
    """JUnit XML: one testcase per criterion x host, and per canary stage for a stage's records (fail -> <failure>,
    error -> <error>, skipped, waived and advisory findings -> <skipped> with the reason). An SLO record's figures
    are in its case's text and properties; a stage's canary.step case carries the stage's table."""
    suite = ET.Element("testsuite")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    stage_groups = dict(((g["host"], g["weight"]), g) for g in stage_measurements.stages(report))
    for case_data in _junit_cases(report):
        total_time += _junit_testcase(suite, counts, case_data, stage_groups)
    _junit_gate_cases(suite, counts, report)

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

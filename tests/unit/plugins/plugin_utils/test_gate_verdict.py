"""The gate's decision and reports (plugins/plugin_utils/decision.py and reports.py): every decision path."""
from __future__ import annotations

import collections
import datetime
import json
import os
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils import decision as v
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils import reports
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    SKIP_CHECK_MODE,
    SKIP_NOT_APPLICABLE,
    SKIP_NOT_REQUESTED,
    make_record,
)

NOW = datetime.datetime(2026, 6, 15, 12, 0, 0, tzinfo=datetime.timezone.utc)
CANARY = "CANARY-s3cr3t-7f1d2b"


def rec(criterion, status, host=None, blocking=True, summary=None, evidence=None, duration_ms=5.0, skip_reason=None):
    record = make_record(criterion, status, summary if summary is not None else "%s %s" % (criterion, status),
                         evidence=evidence, blocking=blocking, duration_ms=duration_ms, skip_reason=skip_reason)
    if host is not None:
        record["host"] = host
    return record


def decide(records=None, **kwargs):
    kwargs.setdefault("now", NOW)
    return v.evaluate(records=records, **kwargs)


def by_id(report):
    return {c["criterion"]: c for c in report["criteria"]}


# ------------------------------------------------------------------------------------------- verdicts

def test_all_blocking_pass_is_go():
    report = decide([rec("health.liveness", "pass"), rec("health.readiness", "pass"), rec("rls.isolation", "pass")])
    assert report["verdict"] == v.GO
    assert report["failing"] == [] and report["inconclusive"] == []
    assert report["counts"]["criteria"]["pass"] == 3
    assert report["counts"]["records"] == {"pass": 3, "fail": 0, "error": 0, "skipped": 0, "total": 3}
    assert report["reasons"] == ["3 blocking criteria passed"]


def test_blocking_fail_is_nogo_and_errors_are_listed_too():
    report = decide([rec("health.liveness", "pass"), rec("health.readiness", "fail", summary="/readyz 503"),
                     rec("jobs.heartbeat", "error", summary="connection refused")])
    assert report["verdict"] == v.NO_GO
    assert report["failing"] == ["health.readiness"]
    assert report["inconclusive"] == ["jobs.heartbeat"]
    assert any("1 blocking criterion failed: health.readiness" == r for r in report["reasons"])
    assert any("inconclusive: jobs.heartbeat" in r for r in report["reasons"])
    # failing criteria are listed first
    assert [c["outcome"] for c in report["criteria"]] == ["fail", "inconclusive", "pass"]


def test_blocking_error_alone_is_inconclusive():
    report = decide([rec("health.liveness", "pass"), rec("migrations.at_head", "error", summary="no version table")])
    assert report["verdict"] == v.INCONCLUSIVE
    assert report["inconclusive"] == ["migrations.at_head"]
    assert by_id(report)["migrations.at_head"]["reasons"] == ["error: the check could not decide"]


def test_no_records_at_all_is_never_go():
    report = decide([])
    assert report["verdict"] == v.INCONCLUSIVE
    assert "no blocking criterion was verified" in report["reasons"][0]


def test_only_skipped_and_advisory_records_are_not_go():
    report = decide([rec("smoke.lead", "skipped", summary="writes not allowed"),
                     rec("rls.coverage", "pass", blocking=False)])
    assert report["verdict"] == v.INCONCLUSIVE
    assert by_id(report)["smoke.lead"]["outcome"] == v.OUTCOME_SKIPPED


def test_skipped_blocking_criterion_that_is_not_required_does_not_gate():
    report = decide([rec("health.liveness", "pass"), rec("smoke.lead", "skipped", summary="writes not allowed")])
    assert report["verdict"] == v.GO
    assert by_id(report)["smoke.lead"]["outcome"] == "skipped"


# ------------------------------------------------------------------------------------------- required

def test_missing_required_criterion_is_inconclusive():
    report = decide([rec("health.liveness", "pass")], required_criteria=["backup.drill", "health.liveness"])
    assert report["verdict"] == v.INCONCLUSIVE
    assert report["inconclusive"] == ["backup.drill"]
    missing = by_id(report)["backup.drill"]
    assert missing["status"] == v.MISSING and missing["required"] and missing["missing"]
    assert missing["reasons"] == ["required, but no check reported it"]
    assert by_id(report)["health.liveness"]["required"] is True


def test_skipped_records_do_not_satisfy_a_required_criterion():
    report = decide([rec("health.liveness", "pass"), rec("backup.drill", "skipped", summary="disabled")],
                    required_criteria=["backup.drill"])
    assert report["verdict"] == v.INCONCLUSIVE
    assert by_id(report)["backup.drill"]["reasons"] == ["required, but every record of it was skipped"]


def test_required_criterion_with_a_failure_is_nogo_not_missing():
    report = decide([rec("health.liveness", "pass"), rec("backup.drill", "fail")], required_criteria=["backup.drill"])
    assert report["verdict"] == v.NO_GO
    assert by_id(report)["backup.drill"]["missing"] is False


def test_required_criterion_with_only_an_error_is_inconclusive():
    report = decide([rec("health.liveness", "pass"), rec("backup.drill", "error")], required_criteria=["backup.drill"])
    assert report["verdict"] == v.INCONCLUSIVE


# ------------------------------------------------------------------------------------------- check mode

def test_required_criterion_skipped_in_check_mode_cannot_be_go():
    records = [rec("health.liveness", "pass"),
               rec("smoke.lead", "skipped", summary="POST not sent", skip_reason=SKIP_CHECK_MODE)]
    report = decide(records, required_criteria=["smoke.lead"], check_mode=True)
    assert report["mode"] == "check"
    assert report["verdict"] == v.INCONCLUSIVE
    reasons = by_id(report)["smoke.lead"]["reasons"]
    assert "required, but skipped in check mode: not verified" in reasons


def test_blocking_record_skipped_because_of_check_mode_is_unverified_even_when_not_required():
    records = [rec("health.liveness", "pass"), rec("admin.cleanup", "skipped", summary="planned, not sent",
                                                   skip_reason=SKIP_CHECK_MODE)]
    report = decide(records, check_mode=True)
    assert report["verdict"] == v.INCONCLUSIVE
    assert report["inconclusive"] == ["admin.cleanup"]
    assert "skipped because of check mode: not verified" in by_id(report)["admin.cleanup"]["reasons"]


def test_check_mode_skip_is_read_from_the_skip_reason_never_from_the_wording():
    assert v.check_mode_skip(rec("admin.cleanup", "skipped", summary="planned", skip_reason=SKIP_CHECK_MODE))
    assert not v.check_mode_skip(rec("admin.cleanup", "skipped", summary="skipped in check mode"))
    assert not v.check_mode_skip(rec("admin.cleanup", "skipped", summary="planned", skip_reason=SKIP_NOT_REQUESTED))
    assert not v.check_mode_skip(rec("admin.cleanup", "pass", summary="check mode"))


def test_check_mode_skip_is_not_read_from_the_evidence():
    # Every producer sets skip_reason (make_record); an evidence flag alone withholds nothing.
    assert not v.check_mode_skip(rec("admin.cleanup", "skipped", summary="planned", evidence={"check_mode": True}))


def test_a_skipped_record_that_mentions_check_mode_without_the_field_does_not_gate():
    report = decide([rec("health.liveness", "pass"), rec("admin.cleanup", "skipped", summary="check mode: not sent")],
                    check_mode=True)
    assert report["verdict"] == v.GO
    assert by_id(report)["admin.cleanup"]["outcome"] == v.OUTCOME_SKIPPED


@pytest.mark.parametrize("reason", [SKIP_CHECK_MODE, SKIP_NOT_REQUESTED, SKIP_NOT_APPLICABLE])
def test_every_skip_reason_is_accepted(reason):
    report = decide([rec("health.liveness", "pass"), rec("admin.cleanup", "skipped", skip_reason=reason)])
    assert report["input_errors"] == []
    assert by_id(report)["admin.cleanup"]["records"][0]["check_mode_skip"] is (reason == SKIP_CHECK_MODE)


@pytest.mark.parametrize("record, problem", [
    ({"criterion": "admin.cleanup", "status": "skipped", "skip_reason": "later"}, "unknown skip reason later"),
    ({"criterion": "admin.cleanup", "status": "skipped", "skip_reason": ["check_mode"]}, "unknown skip reason"),
    ({"criterion": "admin.cleanup", "status": "fail", "skip_reason": "check_mode"}, "only a skipped record"),
])
def test_a_bad_skip_reason_is_an_input_error_naming_the_field(record, problem):
    report = decide([rec("health.liveness", "pass"), record])
    assert report["verdict"] == v.INCONCLUSIVE
    assert any("records[1].skip_reason" in e and problem in e for e in report["input_errors"]), report["input_errors"]
    assert by_id(report)["admin.cleanup"]["outcome"] == v.OUTCOME_INCONCLUSIVE


def test_check_mode_with_all_read_only_checks_passing_is_go_and_says_check():
    report = decide([rec("health.liveness", "pass"), rec("rls.isolation", "pass")], check_mode=True)
    assert report["verdict"] == v.GO and report["mode"] == "check"


def test_advisory_record_skipped_in_check_mode_does_not_gate():
    report = decide([rec("health.liveness", "pass"),
                     rec("jobs.run_once", "skipped", blocking=False, summary="not run",
                         skip_reason=SKIP_CHECK_MODE)], check_mode=True)
    assert report["verdict"] == v.GO


# ------------------------------------------------------------------------------------------- advisory

def test_advisory_failure_is_reported_never_gating():
    report = decide([rec("health.liveness", "pass"), rec("rls.coverage", "fail", blocking=False, summary="95 tables")])
    assert report["verdict"] == v.GO
    assert report["advisory"] == ["rls.coverage"]
    assert by_id(report)["rls.coverage"]["blocking"] is False


def test_advisory_option_overrides_the_record_blocking_flag():
    records = [rec("health.liveness", "pass"), rec("config.stripe", "fail", summary="STRIPE_SECRET_KEY not set"),
               rec("config.email", "error")]
    report = decide(records, advisory=["config.stripe", "config.email"])
    assert report["verdict"] == v.GO
    assert sorted(report["advisory"]) == ["config.email", "config.stripe"]
    stripe = by_id(report)["config.stripe"]
    assert stripe["advisory_override"] is True and stripe["blocking"] is False
    assert stripe["records"][0]["blocking"] is False


# ------------------------------------------------------------------------------------------- waivers

def test_valid_waiver_makes_a_failure_non_gating():
    waivers = [{"criterion": "backup.freshness", "reason": "backup host migration", "expires": "2026-06-30",
                "approved_by": "ops", "ticket": "CHG-1"}]
    report = decide([rec("health.liveness", "pass"), rec("backup.freshness", "fail", summary="marker 3 days old")],
                    waivers=waivers)
    assert report["verdict"] == v.GO
    assert report["waived"] == ["backup.freshness"]
    applied = report["waivers"]["applied"]
    assert len(applied) == 1 and applied[0]["covers"] == ["backup.freshness@-"] and applied[0]["ticket"] == "CHG-1"
    assert by_id(report)["backup.freshness"]["records"][0]["waived"] is True
    assert "1 waived" in report["reasons"][0]


def test_waiver_expiring_today_still_applies():
    report = decide([rec("health.liveness", "pass"), rec("backup.freshness", "fail")],
                    waivers=[{"criterion": "backup.freshness", "reason": "r", "expires": "2026-06-15"}])
    assert report["verdict"] == v.GO


def test_expired_waiver_is_ignored_and_reported():
    report = decide([rec("health.liveness", "pass"), rec("backup.freshness", "fail")],
                    waivers=[{"criterion": "backup.freshness", "reason": "old", "expires": "2026-06-14"}])
    assert report["verdict"] == v.NO_GO
    assert report["waivers"]["expired"][0]["criterion"] == "backup.freshness"
    assert report["waivers"]["applied"] == []
    assert "expired on 2026-06-14: ignored" in reports.render_markdown(report)


def test_waiver_accepts_a_date_object():
    report = decide([rec("health.liveness", "pass"), rec("backup.freshness", "error")],
                    waivers=[{"criterion": "backup.freshness", "reason": "r", "expires": datetime.date(2026, 7, 1)}])
    assert report["verdict"] == v.GO


def test_host_waiver_covers_only_that_host():
    records = [rec("health.liveness", "pass", host="app1"), rec("backup.freshness", "fail", host="app1"),
               rec("backup.freshness", "fail", host="app2", summary="no marker")]
    waivers = [{"criterion": "backup.freshness", "reason": "app1 rebuilt", "expires": "2026-12-31", "host": "app1"}]
    report = decide(records, waivers=waivers)
    assert report["verdict"] == v.NO_GO
    crit = by_id(report)["backup.freshness"]
    assert [r["waived"] for r in crit["records"]] == [True, False]
    assert crit["summary"] == "app2: no marker"
    report_app2_waived = decide(records, waivers=waivers + [dict(waivers[0], host="app2")])
    assert report_app2_waived["verdict"] == v.GO


def test_waiver_covers_a_missing_required_criterion_only_without_host():
    records = [rec("health.liveness", "pass")]
    hostless = [{"criterion": "backup.drill", "reason": "drill host down", "expires": "2026-07-01"}]
    report = decide(records, required_criteria=["backup.drill"], waivers=hostless)
    assert report["verdict"] == v.GO and report["waived"] == ["backup.drill"]
    assert by_id(report)["backup.drill"]["reasons"] == ["required and missing, waived until 2026-07-01"]
    with_host = [dict(hostless[0], host="db1")]
    assert decide(records, required_criteria=["backup.drill"], waivers=with_host)["verdict"] == v.INCONCLUSIVE


def test_unused_waiver_is_listed():
    report = decide([rec("health.liveness", "pass")],
                    waivers=[{"criterion": "health.liveness", "reason": "just in case", "expires": "2026-07-01"}])
    assert report["verdict"] == v.GO
    assert [w["criterion"] for w in report["waivers"]["unused"]] == ["health.liveness"]


@pytest.mark.parametrize("waiver, fragment", [
    ({"criterion": "backup.drill", "expires": "2026-07-01"}, "waivers[0].reason: missing"),
    ({"criterion": "backup.drill", "reason": "  ", "expires": "2026-07-01"}, "waivers[0].reason: missing"),
    ({"criterion": "backup.drill", "reason": "r"}, "waivers[0].expires: missing"),
    ({"criterion": "backup.drill", "reason": "r", "expires": "next week"}, "waivers[0].expires: next week is not a valid date"),
    ({"criterion": "backup.drill", "reason": "r", "expires": "2026-02-30"}, "waivers[0].expires: 2026-02-30 is not a valid date"),
    ({"reason": "r", "expires": "2026-07-01"}, "waivers[0].criterion: missing"),
    ({"criterion": "Backup Drill", "reason": "r", "expires": "2026-07-01"}, "waivers[0].criterion: Backup Drill is not a criterion id"),
    ({"criterion": "backup.drill", "reason": "r", "expires": "2026-07-01", "until": "x"}, "waivers[0]: unknown field(s) until"),
    ("backup.drill", "waivers[0]: a waiver must be a mapping"),
])
def test_malformed_waiver_is_bad_input_and_never_go(waiver, fragment):
    report = decide([rec("health.liveness", "pass"), rec("backup.drill", "fail")], waivers=[waiver])
    assert any(fragment in e for e in report["input_errors"]), report["input_errors"]
    assert report["verdict"] == v.NO_GO  # the failure stays; a malformed waiver waives nothing
    clean = decide([rec("health.liveness", "pass")], waivers=[waiver])
    assert clean["verdict"] == v.INCONCLUSIVE


# ------------------------------------------------------------------------------------------- multi-host

def test_worst_status_wins_across_hosts_and_records():
    records = [rec("health.readiness", "pass", host="app1"), rec("health.readiness", "pass", host="app2"),
               rec("health.readiness", "fail", host="app3", summary="/readyz 503: jobs not ok"),
               rec("health.readiness", "error", host="app4", summary="timeout")]
    report = decide(records)
    crit = by_id(report)["health.readiness"]
    assert crit["status"] == "error"  # worst status overall
    assert crit["outcome"] == v.OUTCOME_FAIL  # but a blocking failure makes it NO-GO, not inconclusive
    assert crit["hosts"] == ["app1", "app2", "app3", "app4"]
    assert crit["summary"] == "app3: /readyz 503: jobs not ok"
    assert report["verdict"] == v.NO_GO
    assert report["counts"]["hosts"] == 4


def test_several_records_of_one_criterion_on_one_host():
    records = [dict(rec("auth.roles", "pass"), name="auth.roles viewer"),
               dict(rec("auth.roles", "fail", summary="dispatcher got 200 on cleanup, expected 403"), name="auth.roles dispatcher")]
    report = decide(records)
    assert report["failing"] == ["auth.roles"]
    assert [r["name"] for r in by_id(report)["auth.roles"]["records"]] == ["auth.roles viewer", "auth.roles dispatcher"]


def test_results_as_host_mapping_sets_the_host():
    results = {
        "app1": {"changed": False, "records": [rec("host.disk", "pass"), rec("host.memory", "pass")]},
        "app2": {"changed": False, "records": [rec("host.disk", "fail", summary="12 GB free, need 20")]},
    }
    report = v.evaluate(results=results, now=NOW)
    assert report["verdict"] == v.NO_GO
    disk = by_id(report)["host.disk"]
    assert [(r["host"], r["status"]) for r in disk["records"]] == [("app1", "pass"), ("app2", "fail")]
    assert disk["summary"] == "app2: 12 GB free, need 20"


def test_results_in_every_registered_shape():
    single = {"changed": False, "records": [rec("health.liveness", "pass")], "status": "pass"}
    loop = {"changed": False, "msg": "All items completed", "results": [
        {"item": "a", "records": [rec("rls.enabled_forced", "pass")], "ansible_loop_var": "item"},
        {"item": "b", "skipped": True, "skip_reason": "Conditional result was False", "ansible_loop_var": "item"},
    ]}
    gathered = [[{"records": [rec("host.disk", "pass")], "host": "app1"}], {"records": [rec("host.disk", "pass")], "host": "app2"}]
    report = v.evaluate(results=[single, loop, gathered], records=[rec("rls.isolation", "pass")], now=NOW)
    assert report["verdict"] == v.GO
    assert report["input_errors"] == []
    assert sorted(by_id(report)) == ["health.liveness", "host.disk", "rls.enabled_forced", "rls.isolation"]
    assert by_id(report)["host.disk"]["hosts"] == ["app1", "app2"]
    assert any("skipped task" in n for n in report["notes"])


def test_a_failed_check_task_without_records_is_bad_input():
    results = {"app1": {"failed": True, "msg": "connect failed: password=%s rejected for %s" % (CANARY, "x" + CANARY)},
               "app2": {"records": [rec("rls.isolation", "pass")]}}
    report = v.evaluate(results=results, now=NOW, secrets=[CANARY])
    assert report["verdict"] == v.INCONCLUSIVE
    assert report["input_errors"][0].startswith("results[app1]: the check task failed without records on app1: connect failed")
    assert CANARY not in json.dumps(report)


def test_a_result_without_records_is_bad_input():
    report = v.evaluate(results=[{"changed": False, "rc": 0}], now=NOW)
    assert report["input_errors"] == ["results[0]: not a registered check result (no 'records')"]
    assert report["verdict"] == v.INCONCLUSIVE


# ------------------------------------------------------------------------------------------- malformed records

@pytest.mark.parametrize("bad, fragment", [
    ({"status": "pass", "summary": "x"}, "records[1].criterion: missing"),
    ({"criterion": "Health", "status": "pass"}, "records[1].criterion: Health is not a criterion id"),
    ({"criterion": "health.readiness", "status": "ok"}, "records[1].status: unknown status ok"),
    ({"criterion": "health.readiness"}, "records[1].status: unknown status missing"),
    ({"criterion": "health.readiness", "status": "pass", "blocking": "yes"}, "records[1].blocking: must be true or false"),
    ({"criterion": "health.readiness", "status": "pass", "evidence": ["a"]}, "records[1].evidence: must be a mapping"),
    ({"criterion": "health.readiness", "status": "pass", "duration_ms": "fast"}, "records[1].duration_ms: must be a number"),
    ({"criterion": "health.readiness", "status": "pass", "colour": "red"}, "records[1]: unknown field(s) colour"),
    ("health.readiness=pass", "records[1]: a record must be a mapping, got str"),
])
def test_malformed_record_is_named_by_index_and_field_and_never_go(bad, fragment):
    report = decide([rec("health.liveness", "pass"), bad])
    assert any(fragment in e for e in report["input_errors"]), report["input_errors"]
    assert report["verdict"] == v.INCONCLUSIVE
    assert reports.message(report).count("INPUT ") >= 1


def test_malformed_record_with_readable_criterion_shows_as_inconclusive_criterion():
    report = decide([rec("health.liveness", "pass"), {"criterion": "health.readiness", "status": "green"}])
    crit = by_id(report)["health.readiness"]
    assert crit["outcome"] == v.OUTCOME_INCONCLUSIVE and crit["status"] == "error"
    assert "malformed record" in crit["summary"]


def test_malformed_input_with_a_failure_is_nogo():
    report = decide([rec("health.readiness", "fail"), {"criterion": "x.y", "status": "nope"}])
    assert report["verdict"] == v.NO_GO


@pytest.mark.parametrize("option", ["advisory", "required_criteria"])
def test_bad_criterion_ids_in_options_are_bad_input(option):
    report = decide([rec("health.liveness", "pass")], **{option: ["health.liveness", "Not An Id"]})
    assert report["input_errors"] == ["%s[1]: Not An Id is not a criterion id" % option]
    assert report["verdict"] == v.INCONCLUSIVE


def test_plain_copies_of_templating_subclasses():
    class Tagged(str):
        pass

    class Lazy(collections.UserDict):
        pass

    records = [Lazy({Tagged("criterion"): Tagged("health.liveness"), "status": Tagged("pass"), "summary": "ok"})]
    report = decide(records)
    assert report["verdict"] == v.GO
    assert not isinstance(report["criteria"][0]["criterion"], Tagged)
    json.dumps(report)


# ------------------------------------------------------------------------------------------- messages and stats

def test_message_names_each_failing_and_inconclusive_criterion_with_its_evidence_summary():
    records = [rec("health.readiness", "fail", host="app1", summary="/readyz 503: checks jobs not ok"),
               rec("config.secrets", "fail", host="app1", summary="AUTH_SECRET_KEY shorter than 32"),
               rec("jobs.heartbeat", "error", host="app2", summary="connection refused")]
    report = decide(records, release="v2026.11.1")
    text = reports.message(report, {"markdown": "/a/gonogo.md"})
    assert text.startswith("NO-GO for release v2026.11.1: 2 blocking criteria failed: config.secrets, health.readiness")
    assert "FAILED health.readiness: app1: /readyz 503: checks jobs not ok" in text
    assert "FAILED config.secrets: app1: AUTH_SECRET_KEY shorter than 32" in text
    assert "INCONCLUSIVE jobs.heartbeat: app2: connection refused" in text
    assert text.endswith("report: /a/gonogo.md")
    assert len(text) < 800


def test_stats_shape():
    report = decide([rec("health.readiness", "fail")], release="v1", check_mode=True)
    data = reports.stats(report, {"json": "/a/gonogo.json", "markdown": "/a/gonogo.md", "junit": "/a/junit.xml"})
    assert data["gonogo_verdict"] == "NO-GO"
    assert data["gonogo_failing"] == ["health.readiness"]
    assert data["gonogo_report"]["json"] == "/a/gonogo.json"
    assert data["gonogo_report"]["mode"] == "check" and data["gonogo_report"]["release"] == "v1"


# ------------------------------------------------------------------------------------------- rendering

def _sample_report(**kwargs):
    records = [rec("health.liveness", "pass", host="app1"),
               rec("health.readiness", "fail", host="app1", summary="503 | jobs <not> ok\nsecond line",
                   evidence={"status": 503, "body": {"ok": False}}),
               rec("health.readiness", "pass", host="app2"),
               rec("jobs.heartbeat", "error", host="app2", summary="timeout\x07 after 5 s"),
               rec("rls.coverage", "fail", blocking=False, summary="95 tables without RLS"),
               rec("backup.freshness", "fail", host="db1", summary="marker missing"),
               rec("smoke.docs", "skipped", summary="not asked")]
    waivers = [{"criterion": "backup.freshness", "reason": "new backup host", "expires": "2026-07-01"},
               {"criterion": "tls.redirect", "reason": "old", "expires": "2026-01-01"}]
    return decide(records, waivers=waivers, required_criteria=["backup.drill"], release="v1 | rc<2>", **kwargs)


def test_markdown_has_banner_failing_first_and_every_criterion():
    text = reports.render_markdown(_sample_report())
    lines = text.splitlines()
    assert lines[0] == "# Release gate: NO-GO"
    assert lines[2].startswith("> **NO-GO: at least one blocking criterion failed.**")
    failing_at = text.index("## Failing and inconclusive criteria")
    all_at = text.index("## All criteria")
    assert failing_at < text.index("## Waived") < text.index("## Advisory findings") < all_at
    failing_section = text[failing_at:text.index("## Waived")]
    assert "| health.readiness | **FAIL** | app1 | fail | 503 \\| jobs &lt;not&gt; ok second line |" in failing_section
    assert '"status": 503' in failing_section
    assert "| backup.drill | **INCONCLUSIVE** | - | missing | required, but no check reported it |" in failing_section
    assert "jobs.heartbeat" in failing_section
    assert "| Release | v1 \\| rc&lt;2&gt; |" in text
    # every table row has the same number of unescaped pipes as its header
    for block in text.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        if rows:
            counts = {line.replace("\\|", "").count("|") for line in rows}
            assert len(counts) == 1, rows
    all_rows = [line for line in text[all_at:].splitlines() if line.startswith("| ") and not line.startswith("| Criterion")]
    assert len(all_rows) == len(_sample_report()["criteria"])


def test_junit_is_well_formed_with_one_testcase_per_criterion_and_host():
    report = _sample_report()
    root = ET.fromstring(reports.render_junit(report).encode("utf-8"))
    suite = root.find("testsuite")
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert set(cases) == {
        "health.liveness [app1]", "health.readiness [app1]", "health.readiness [app2]", "jobs.heartbeat [app2]",
        "rls.coverage", "backup.freshness [db1]", "smoke.docs", "backup.drill",
    }
    assert cases["health.readiness [app1]"].find("failure") is not None
    assert cases["health.readiness [app2]"].find("failure") is None
    assert cases["jobs.heartbeat [app2]"].find("error").get("type") == "error"
    assert "\x07" not in cases["jobs.heartbeat [app2]"].find("error").get("message")
    assert cases["backup.drill"].find("error").get("type") == "missing"
    assert cases["backup.freshness [db1]"].find("skipped").get("message").startswith("waived: ")
    assert cases["rls.coverage"].find("skipped").get("message").startswith("advisory fail (not gating)")
    assert cases["smoke.docs"].find("skipped") is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("8", "1", "2", "3")
    assert root.get("tests") == "8"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["verdict"] == "NO-GO" and props["release"] == "v1 | rc<2>"
    assert float(cases["health.readiness [app1]"].get("time")) == pytest.approx(0.005)


def test_junit_check_mode_skip_is_an_error_and_input_errors_get_a_testcase():
    report = decide([rec("health.liveness", "pass"), rec("admin.cleanup", "skipped", summary="not sent", skip_reason=SKIP_CHECK_MODE),
                     {"criterion": "x.y", "status": "odd"}], check_mode=True)
    root = ET.fromstring(reports.render_junit(report))
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert cases["admin.cleanup"].find("error").get("type") == "check_mode"
    assert cases["gate.input"].find("error").get("type") == "input"


def test_json_render_round_trips():
    report = _sample_report()
    assert json.loads(reports.render_json(report)) == json.loads(json.dumps(report))


# ------------------------------------------------------------------------------------------- redaction

def test_canaries_never_reach_any_artifact(tmp_path):
    records = [
        rec("health.readiness", "fail", host="app1", summary="GET https://admin:%s@api.local/readyz -> 503" % CANARY,
            evidence={"headers": {"Authorization": "Basic %s" % CANARY}, "password": CANARY, "dsn": "postgresql://u:%s@db/x" % CANARY,
                      "note": "token leaked: %s" % CANARY}),
        rec("config.secrets", "pass", summary="ok", evidence={"api_token": CANARY, "nested": [{"secret": CANARY}]}),
    ]
    waivers = [{"criterion": "tls.redirect", "reason": "ticket says %s" % CANARY, "expires": "2026-07-01"}]
    report = decide(records, waivers=waivers, release="v1", secrets=[CANARY])
    paths = reports.write_reports(report, str(tmp_path / "artifacts"))
    for path in paths.values():
        content = open(path, encoding="utf-8").read()
        assert CANARY not in content, path
        assert "********" in content
    assert CANARY not in reports.message(report)
    assert CANARY not in json.dumps(reports.stats(report, paths))


def test_sensitive_keys_are_masked_without_the_secrets_list(tmp_path):
    report = decide([rec("health.readiness", "fail", evidence={"authorization": "Bearer %s" % CANARY, "token": CANARY,
                                                               "url": "https://u:%s@h/x" % CANARY})])
    paths = reports.write_reports(report, str(tmp_path))
    for path in paths.values():
        assert CANARY not in open(path, encoding="utf-8").read()


# ------------------------------------------------------------------------------------------- writing

def test_reports_are_written_atomically_and_replace_old_ones(tmp_path):
    target = tmp_path / "out" / "deeper"
    first = reports.write_reports(decide([rec("health.liveness", "pass")]), str(target))
    assert sorted(os.listdir(target)) == ["gonogo.json", "gonogo.md", "junit.xml"]
    assert json.load(open(first["json"]))["verdict"] == "GO"
    second = reports.write_reports(decide([rec("health.liveness", "fail")]), str(target))
    assert second == first
    assert json.load(open(second["json"]))["verdict"] == "NO-GO"
    assert sorted(os.listdir(target)) == ["gonogo.json", "gonogo.md", "junit.xml"]  # no temporary leftovers
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(second["json"]).st_mode & 0o777 == 0o666 & ~umask  # as a plain open() would create it


def test_a_failed_write_leaves_the_previous_reports_whole(tmp_path, monkeypatch):
    reports.write_reports(decide([rec("health.liveness", "pass")]), str(tmp_path))
    before = {name: (tmp_path / name).read_text() for name in os.listdir(tmp_path)}
    real_fsync = os.fsync
    calls = []

    def failing_fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(reports.os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        reports.write_reports(decide([rec("health.liveness", "fail")]), str(tmp_path))
    after = {name: (tmp_path / name).read_text() for name in os.listdir(tmp_path)}
    assert after == before  # old reports intact, no temporary file left behind


def test_unwritable_directory_raises_oserror(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError):
        reports.write_reports(decide([rec("health.liveness", "pass")]), str(blocker / "sub"))


# ------------------------------------------------------------------------------------------- expected hosts

def test_expected_host_without_any_result_is_never_go():
    records = [rec("health.liveness", "pass", host="app1"), rec("host.disk", "skipped", host="app2", summary="no data")]
    report = decide(records, expected_hosts=["app1", "app2", "app3"])
    assert report["verdict"] == v.INCONCLUSIVE
    assert report["missing_hosts"] == ["app2", "app3"]  # skipped records are no result
    assert "2 expected hosts reported no result: app2, app3" in report["reasons"]
    assert "NO RESULT from app2, app3" in reports.message(report)
    assert "## Expected hosts without results" in reports.render_markdown(report)
    cases = {c.get("name"): c for c in ET.fromstring(reports.render_junit(report)).iter("testcase")}
    assert cases["gate.hosts [app3]"].find("error").get("type") == "missing_host"


def test_expected_hosts_all_reporting_is_go_and_a_failure_stays_nogo():
    records = [rec("health.liveness", "pass", host="app1"), rec("health.liveness", "pass", host="app2")]
    assert decide(records, expected_hosts=["app1", "app2"])["verdict"] == v.GO
    report = decide(records + [rec("host.disk", "fail", host="app1")], expected_hosts=["app1", "app2", "app9"])
    assert report["verdict"] == v.NO_GO and report["missing_hosts"] == ["app9"]


def test_bad_expected_hosts_are_bad_input():
    report = decide([rec("health.liveness", "pass", host="app1")], expected_hosts=["app1", ""])
    assert report["input_errors"] == ["expected_hosts[1]: must be a host name"]
    assert report["verdict"] == v.INCONCLUSIVE

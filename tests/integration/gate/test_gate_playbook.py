"""The gate in a real ansible-playbook run: GO, NO-GO, inconclusive, waivers, check mode, the stats AWX
sees, and real check modules on several hosts feeding it."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from slo_records import FAULTY_25, HEALTHY_10, stage_analysis

pytestmark = pytest.mark.integration

CANARY = "CANARY-playbook-91ac44"


def record(criterion, status, summary=None, host=None, blocking=True, evidence=None, skip_reason=None):
    rec = {"criterion": criterion, "name": criterion, "status": status, "blocking": blocking,
           "summary": summary or "%s %s" % (criterion, status), "evidence": evidence or {}, "duration_ms": 12.5}
    if host:
        rec["host"] = host
    if skip_reason:
        rec["skip_reason"] = skip_reason
    return rec


def gate_task(**options):
    args = {"records": "{{ records }}", "artifacts_dir": "{{ artifacts }}", "release": "v2026.11.1"}
    args.update(options)
    return {"name": "Decide", "cleanwithsnapshot.release.gate": args, "register": "gonogo"}


PASSING = [record("health.liveness", "pass", "GET /healthz 200"), record("health.readiness", "pass", "GET /readyz 200"),
           record("rls.isolation", "pass", "org A rows invisible under org B")]


def test_go_passes_the_play_writes_reports_and_publishes_stats(run_playbook):
    run = run_playbook([gate_task()], {"records": PASSING})
    assert run.rc == 0, run.output
    assert run.custom_stats["gonogo_verdict"] == "GO"
    assert run.custom_stats["gonogo_failing"] == []
    run_dir = Path(run.custom_stats["gonogo_report"]["run_dir"])
    assert run_dir.parent == run.artifacts and run_dir.name.endswith("Z-playbook-v2026.11.1")
    assert run.custom_stats["gonogo_report"]["json"] == str(run_dir / "gonogo.json")
    assert "CUSTOM STATS" in run.stdout and '"gonogo_verdict": "GO"' in run.stdout
    report = run.report()
    assert report["verdict"] == "GO" and report["release"] == "v2026.11.1" and report["mode"] == "normal"
    assert (run.artifacts / "gonogo.md").read_text().startswith("# Release gate: GO")
    suite = ET.parse(str(run.artifacts / "junit.xml")).getroot().find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "0"
    assert run.stats["hosts"]["localhost"]["failures"] == 0


def test_nogo_fails_the_play_naming_each_criterion_and_writes_reports(run_playbook):
    records = PASSING + [record("jobs.status", "fail", "outbox-delivery: 7 consecutive failures", host="app1"),
                         record("migrations.at_head", "error", "version table missing")]
    run = run_playbook([gate_task()], {"records": records})
    assert run.rc == 2, run.output
    assert "FAILED jobs.status: app1: outbox-delivery: 7 consecutive failures" in run.stdout
    assert "INCONCLUSIVE migrations.at_head: version table missing" in run.stdout
    assert "NO-GO for release v2026.11.1: 1 blocking criterion failed: jobs.status" in run.stdout
    report = run.report()
    assert report["verdict"] == "NO-GO"
    assert report["failing"] == ["jobs.status"] and report["inconclusive"] == ["migrations.at_head"]
    root = ET.parse(str(run.artifacts / "junit.xml")).getroot()
    assert root.get("failures") == "1" and root.get("errors") == "1"
    # ansible-core keeps custom stats of successful tasks only: a failed gate publishes none.
    assert run.custom_stats == {}


def test_nogo_reaches_awx_stats_when_the_play_fails_in_a_next_task(run_playbook):
    records = PASSING + [record("backup.freshness", "fail", "marker 4 days old")]
    tasks = [gate_task(fail_on_nogo=False),
             {"name": "Stop on anything but GO", "ansible.builtin.fail": {"msg": "{{ gonogo.msg }}"},
              "when": "gonogo.verdict != 'GO'"}]
    run = run_playbook(tasks, {"records": records})
    assert run.rc == 2
    assert "FAILED backup.freshness: marker 4 days old" in run.stdout
    assert run.custom_stats["gonogo_verdict"] == "NO-GO"
    assert run.custom_stats["gonogo_failing"] == ["backup.freshness"]


def test_missing_required_criterion_is_inconclusive(run_playbook):
    run = run_playbook([gate_task(required_criteria=["backup.drill", "rls.isolation"])], {"records": PASSING})
    assert run.rc == 2
    assert "NO-GO-INCONCLUSIVE" in run.stdout
    assert "INCONCLUSIVE backup.drill: required, but no check reported it" in run.stdout
    report = run.report()
    assert report["verdict"] == "NO-GO-INCONCLUSIVE" and report["inconclusive"] == ["backup.drill"]


@pytest.mark.parametrize("expires, verdict, rc", [("2999-12-31", "GO", 0), ("2000-01-01", "NO-GO", 2)])
def test_waiver_valid_and_expired(run_playbook, expires, verdict, rc):
    records = PASSING + [record("backup.freshness", "fail", "marker 4 days old", host="app1")]
    waivers = [{"criterion": "backup.freshness", "reason": "backup host migration", "expires": expires,
                "host": "app1", "ticket": "CHG-42"}]
    run = run_playbook([gate_task(waivers="{{ waivers }}")], {"records": records, "waivers": waivers})
    assert run.rc == rc, run.output
    report = run.report()
    assert report["verdict"] == verdict
    if verdict == "GO":
        assert report["waived"] == ["backup.freshness"]
        assert report["waivers"]["applied"][0]["covers"] == ["backup.freshness@app1"]
        assert "CHG-42" in (run.artifacts / "gonogo.md").read_text()
    else:
        assert report["waivers"]["expired"][0]["expires"] == "2000-01-01"
        assert "expired on 2000-01-01: ignored" in (run.artifacts / "gonogo.md").read_text()


def test_malformed_waiver_fails_with_the_field_named(run_playbook):
    waivers = [{"criterion": "backup.freshness", "expires": "2999-12-31"}]
    run = run_playbook([gate_task(waivers="{{ waivers }}", fail_on_nogo=False)], {"records": PASSING, "waivers": waivers})
    assert run.rc == 2
    assert "waivers[0].reason: missing" in run.stdout
    assert run.report()["verdict"] == "NO-GO-INCONCLUSIVE"


def test_check_mode_writes_reports_and_never_says_go_unverified(run_playbook):
    records = PASSING + [record("smoke.lead", "skipped", "POST /v1/leads planned, not sent", skip_reason="check_mode")]
    run = run_playbook([gate_task(required_criteria=["smoke.lead"])], {"records": records}, check=True)
    assert run.rc == 2
    report = run.report()
    assert report["mode"] == "check"
    assert report["verdict"] == "NO-GO-INCONCLUSIVE"
    assert report["input_errors"] == []
    assert "(check mode)" in run.stdout
    run_unrequired = run_playbook([gate_task()], {"records": records}, check=True)
    assert run_unrequired.rc == 2 and run_unrequired.report()["inconclusive"] == ["smoke.lead"]
    assert "skipped because of check mode: not verified" in run_unrequired.stdout
    run_ok = run_playbook([gate_task()], {"records": PASSING}, check=True)
    assert run_ok.rc == 0 and run_ok.report()["mode"] == "check" and run_ok.custom_stats["gonogo_report"]["mode"] == "check"


def test_real_config_audit_on_two_hosts_feeds_the_gate(run_playbook, tmp_path):
    good = "\n".join([
        "APP_ENV=prod", "STRICT_CORS=true", "CORS_ORIGINS=https://panidobro.com",
        "AUTH_SECRET_KEY=%s-auth-secret-long-enough" % CANARY, "CLIENT_PORTAL_SECRET=%s-client-portal-long" % CANARY,
        "WORKER_PORTAL_SECRET=%s-worker-portal-long" % CANARY, "ADMIN_PROXY_AUTH_SECRET=%s-proxy-auth-long" % CANARY,
        "ADMIN_BASIC_USERNAME=ops", "ADMIN_BASIC_PASSWORD=%s-pw" % CANARY, "METRICS_TOKEN=%s-metrics" % CANARY,
        "ADMIN_MFA_REQUIRED=true", ""])
    (tmp_path / "app1.env").write_text(good)
    (tmp_path / "app2.env").write_text(good.replace("AUTH_SECRET_KEY=%s-auth-secret-long-enough" % CANARY,
                                                    "AUTH_SECRET_KEY=%s" % CANARY[:10]))
    tasks = [
        {"name": "Audit the env file", "cleanwithsnapshot.release.config_audit": {
            "path": "{{ env_dir }}/{{ inventory_hostname }}.env",
            "base_rules": "{{ config_rules }}",
            "criteria": ["config.prod_mode", "config.secrets", "config.basic_auth", "config.metrics_token",
                         "config.admin_flags"]},
         "register": "config_result"},
        {"name": "Decide for all hosts", "run_once": True, "cleanwithsnapshot.release.gate": {
            "results": "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'config_result'))) }}",
            "required_criteria": ["config.secrets", "config.env_present"],
            "artifacts_dir": "{{ artifacts }}", "release": "multi-host", "redact_values": ["%s" % CANARY]}},
    ]
    defaults = Path(__file__).resolve().parents[3] / "roles" / "preflight" / "defaults" / "main.yml"
    rules = yaml.safe_load(defaults.read_text())["preflight_config_default_rules"]  # as the preflight role passes them
    run = run_playbook(tasks, {"env_dir": str(tmp_path), "config_rules": rules}, inventory="app1,app2,", verbosity=3)
    assert run.rc == 2, run.output
    assert "FAILED config.secrets: app2: 1 of 4 rules failed: AUTH_SECRET_KEY shorter than 32" in run.stdout
    report = run.report()
    assert report["verdict"] == "NO-GO" and report["counts"]["hosts"] == 2
    secrets = [c for c in report["criteria"] if c["criterion"] == "config.secrets"][0]
    assert [(r["host"], r["status"]) for r in secrets["records"]] == [("app1", "pass"), ("app2", "fail")]
    assert CANARY not in run.output and CANARY[:10] not in run.output
    for name in ("gonogo.json", "gonogo.md", "junit.xml"):
        assert CANARY[:10] not in (run.artifacts / name).read_text()


def test_canaries_in_records_never_reach_output_or_artifacts(run_playbook):
    leaky = record("auth.roles", "fail", "viewer accepted with password %s" % CANARY, host="app1",
                   evidence={"request": {"headers": {"Authorization": "Basic %s" % CANARY}},
                             "password": CANARY, "body": "echo %s" % CANARY})
    run = run_playbook([gate_task(redact_values="{{ secrets_to_mask }}")],
                       {"records": PASSING + [leaky], "secrets_to_mask": [CANARY]}, verbosity=4)
    assert run.rc == 2
    assert "FAILED auth.roles: app1: viewer accepted with password ********" in run.stdout
    assert CANARY not in run.output
    for name in ("gonogo.json", "gonogo.md", "junit.xml"):
        assert CANARY not in (run.artifacts / name).read_text()


def test_bad_option_fails_the_task_clearly(run_playbook):
    run = run_playbook([gate_task(fail_on_nogo="sometimes")], {"records": PASSING})
    assert run.rc == 2
    assert "fail_on_nogo" in run.stdout
    assert not (run.artifacts / "gonogo.json").exists()


def test_records_from_a_registered_loop_and_a_skipped_task(run_playbook):
    tasks = [
        {"name": "A check task that did not run", "ansible.builtin.debug": {"msg": "never"}, "when": False,
         "register": "skipped_check"},
        {"name": "Checks in a loop", "ansible.builtin.set_fact": {"ignored": "{{ item }}"},
         "loop": [1], "register": "looped"},
        {"name": "Decide", "cleanwithsnapshot.release.gate": {
            "records": "{{ records }}",
            "results": ["{{ skipped_check }}", {"results": [{"records": "{{ records[:1] }}", "item": 1}]}],
            "artifacts_dir": "{{ artifacts }}"}, "register": "gonogo"},
        {"name": "Show", "ansible.builtin.debug": {"var": "gonogo.counts"}},
    ]
    run = run_playbook(tasks, {"records": PASSING})
    assert run.rc == 0, run.output
    report = run.report()
    assert report["counts"]["records"]["total"] == 4
    assert any("skipped task" in note for note in report["notes"])
    assert json.loads(json.dumps(report))["verdict"] == "GO"


def test_a_host_that_failed_before_its_checks_is_not_forgotten(run_playbook):
    tasks = [
        {"name": "app2 breaks before its checks", "ansible.builtin.fail": {"msg": "disk full"},
         "when": "inventory_hostname == 'app2'"},
        {"name": "Checks", "ansible.builtin.set_fact": {
            "check_result": {"records": [record("health.liveness", "pass", "GET /healthz 200")]}}},
        {"name": "Decide from the hosts still in the play", "run_once": True, "cleanwithsnapshot.release.gate": {
            "results": "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'check_result'))) }}",
            "expected_hosts": "{{ ansible_play_hosts_all }}",
            "artifacts_dir": "{{ artifacts }}", "fail_on_nogo": False}, "register": "gonogo"},
    ]
    run = run_playbook(tasks, inventory="app1,app2,")
    report = run.report()
    assert report["verdict"] == "NO-GO-INCONCLUSIVE"
    assert report["missing_hosts"] == ["app2"]
    assert run.custom_stats["gonogo_verdict"] == "NO-GO-INCONCLUSIVE"
    assert run.custom_stats["gonogo_report"]["missing_hosts"] == ["app2"]


def test_a_canarys_stages_are_reported_with_their_measurements(run_playbook, tmp_path):
    """canary_state and the gate as the canary role runs them: each stage's SLO records (made by slo_analysis's
    judging of real counter windows) are recorded with their stage, and gonogo.md and junit.xml show a table per
    stage with the canary's value, stable's, the threshold and the requests."""
    state = {"path": str(tmp_path / "canary-state.json")}
    tasks = [
        {"name": "Begin", "cleanwithsnapshot.release.canary_state": dict(state, action="begin", version="v2",
                                                                         stages=[10, 25])},
        {"name": "Record stage 10 %", "register": "step10", "cleanwithsnapshot.release.canary_state": dict(
            state, action="step", weight=10, records="{{ stage10 }}")},
        {"name": "Record stage 25 %", "register": "step25", "cleanwithsnapshot.release.canary_state": dict(
            state, action="step", weight=25, records="{{ stage25 }}")},
        gate_task(records=[], results="{{ [step10, step25] }}", fail_on_nogo=False),
    ]
    run = run_playbook(tasks, {"stage10": stage_analysis(*HEALTHY_10), "stage25": stage_analysis(*FAULTY_25)})
    assert run.rc == 0, run.output
    assert run.report()["failing"] == ["canary.step", "slo.error_rate", "slo.vs_stable"]
    markdown = (run.artifacts / "gonogo.md").read_text(encoding="utf-8")
    stage10 = markdown.split("### Stage 10 %: pass\n", 1)[1].split("###", 1)[0]
    assert "| slo.error_rate | - | pass | 0.4 % | - | &lt; 1 % | 250 | 1 of 1 | successful |" in stage10
    stage25 = markdown.split("### Stage 25 %: fail\n", 1)[1].split("##", 1)[0]
    assert ("| slo.vs_stable | vs_stable_error_rate | fail | 5 % | 0.5 % | &lt;= stable + 0.5 % | 600 / 1800 | 1 of 1 "
            in stage25)
    suite = ET.parse(str(run.artifacts / "junit.xml")).getroot().find("testsuite")
    cases = dict((case.get("name"), case) for case in suite.iter("testcase"))
    failed = cases["slo.error_rate [stage 25 %]"]
    assert "stage 25 %: canary 5 %, stable -, threshold < 1 %, requests 600" in failed.find("failure").text
    assert dict((p.get("name"), p.get("value")) for p in failed.find("properties"))["stage_weight"] == "25"
    assert "SLO measurements of stage 10 % (last look)" in cases["canary.step [stage 10 %]"].find("system-out").text


def test_each_run_keeps_its_reports_latest_is_the_newest_and_retention_removes_the_oldest(run_playbook):
    """Three runs of one playbook into one artifacts directory: a GO, a NO-GO, a GO. With keep_runs 2 the first
    folder goes, the NO-GO's stays, latest and the top-level names are the third's; a folder the collection did not
    make is never touched."""
    verdicts = []
    for index, records in enumerate((PASSING, PASSING + [record("jobs.status", "fail", "outbox stuck")], PASSING)):
        run = run_playbook([gate_task(fail_on_nogo=False, keep_runs=2)], {"records": records})
        assert run.rc == 0, run.output
        verdicts.append((run.custom_stats["gonogo_report"]["run_dir"], run.custom_stats["gonogo_verdict"]))
        if index == 0:
            (run.artifacts / "team-notes").mkdir()
    folders = sorted(p.name for p in run.artifacts.iterdir() if p.is_dir() and not p.is_symlink())
    assert folders == sorted([Path(verdicts[1][0]).name, Path(verdicts[2][0]).name, "team-notes"])
    assert [v for dummy, v in verdicts] == ["GO", "NO-GO", "GO"]
    assert json.loads((Path(verdicts[1][0]) / "gonogo.json").read_text())["verdict"] == "NO-GO"
    assert (run.artifacts / "latest").resolve() == Path(verdicts[2][0])
    assert run.report()["verdict"] == "GO"  # the top-level gonogo.json reads latest's


def test_awx_stats_carry_the_findings_the_markdown_and_no_secret(run_playbook):
    """What AWX keeps of a NO-GO job (the files stay in its temporary directory): the verdict, each failing
    criterion with its whole summary, and gonogo.md cut to stats_markdown_bytes (here 1 KiB) with a note - never a secret."""
    leak = "viewer login with %s accepted; fix: revoke the viewer's admin grant and rerun verify" % CANARY
    records = PASSING + [record("auth.roles", "fail", leak, host="app1"),
                         record("migrations.at_head", "error", "version table missing")]
    tasks = [gate_task(fail_on_nogo=False, redact_values=[CANARY], stats_markdown_bytes=1024),
             {"name": "Stop on anything but GO", "ansible.builtin.fail": {"msg": "{{ gonogo.msg }}"},
              "when": "gonogo.verdict != 'GO'"}]
    run = run_playbook(tasks, {"records": records})
    assert run.rc == 2
    stats = run.custom_stats
    assert stats["gonogo_verdict"] == "NO-GO" and stats["gonogo_failing"] == ["auth.roles"]
    findings = dict((f["criterion"], f) for f in stats["gonogo_findings"])
    assert findings["auth.roles"]["outcome"] == "fail" and findings["auth.roles"]["hosts"] == ["app1"]
    assert findings["auth.roles"]["summary"].endswith("fix: revoke the viewer's admin grant and rerun verify")
    assert findings["migrations.at_head"] == {"criterion": "migrations.at_head", "outcome": "inconclusive",
                                              "hosts": ["-"], "summary": "version table missing"}
    markdown = stats["gonogo_markdown"]
    assert markdown.startswith("# Release gate: NO-GO") and len(markdown.encode("utf-8")) <= 1024
    assert stats["gonogo_report"]["markdown_cut"] is True and "Cut at 1024 bytes" in markdown
    assert stats["gonogo_report"]["run_dir"] in markdown
    assert CANARY not in json.dumps(stats) and CANARY not in run.output

"""The verify and release playbooks, run for real with ansible-playbook against a reference stack:
GO when healthy; check mode never a GO from skipped checks; the verdict published for AWX (set_stats).
NO-GO for each fault, naming the right criterion: tests/integration/matrix (the fault matrix)."""
from __future__ import annotations

import json
import os

import pytest

from local_inventory import inventory_vars
from playbook_run import playbook_runner
from refstack import started_stack


pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(pg_server):
    # Its own stack, with the real rate limit; each test starts on a fresh window (the playbook fixture).
    with started_stack(pg_server, "cws_pb_%d" % os.getpid(), layout=True) as ref:
        yield ref


@pytest.fixture()
def playbook(stack, tmp_path):
    runner = playbook_runner(stack, tmp_path)

    def run(name, *extra):
        proc = runner.run(name, *extra)
        return proc, runner.report()

    yield run
    stack.clear_faults()


def not_passing(report):
    return {c["criterion"] for c in report["criteria"] if c["outcome"] in ("fail", "inconclusive")}


def test_healthy_release_is_go_and_published(playbook):
    proc, report = playbook("release.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert report["verdict"] == "GO"
    assert not not_passing(report)
    assert "gonogo_verdict: GO" in proc.stdout  # set_stats, shown as custom stats (what AWX reads)
    outcomes = {c["criterion"]: c["outcome"] for c in report["criteria"]}
    for criterion in ("health.readiness", "migrations.at_head", "rls.isolation", "auth.roles", "config.secrets", "host.disk"):
        assert outcomes[criterion] == "pass"


# The fault cases (one per fault switch, and more) are in tests/integration/matrix (the fault matrix).


@pytest.mark.parametrize("writes", ["false", "true"])
def test_the_role_defaults_are_go_with_writes_off_and_allowed(playbook, writes):
    """The verify role's defaults (the prod inventory sets nothing but addresses and secrets) on a service shaped like
    the real one: its 20 tenant tables, the real rate limit, the whole estimate as the lead's snapshot."""
    proc, report = playbook("verify.yml", "-e", "release_allow_writes=%s" % writes)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert report["verdict"] == "GO", not_passing(report)
    outcomes = {c["criterion"]: c["outcome"] for c in report["criteria"]}
    assert outcomes["rls.isolation"] == "pass" and outcomes["auth.roles"] == "pass"
    isolation = [r for c in report["criteria"] if c["criterion"] == "rls.isolation" for r in c["records"]][0]
    assert len(isolation["evidence"]["tables"]) == 21  # the 20 required and order_addons, found by its policy
    if writes == "true":
        assert outcomes["smoke.lead"] == "pass" and outcomes["admin.cleanup"] == "pass"
    else:
        assert outcomes.get("smoke.lead", "not required") != "pass"


def test_check_mode_gives_a_real_verdict_from_read_only_probes(playbook):
    proc, report = playbook("verify.yml", "--check", "-e", "release_allow_writes=false")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert report["verdict"] == "GO" and report["mode"] == "check"


def test_check_mode_never_says_go_when_required_writes_were_only_planned(playbook):
    proc, report = playbook("verify.yml", "--check")
    assert proc.returncode != 0
    assert report["verdict"] == "NO-GO-INCONCLUSIVE"
    assert {"smoke.lead", "admin.cleanup"} <= set(report["inconclusive"])


def test_check_mode_still_finds_a_read_only_fault(playbook, stack):
    stack.set_fault("rls_not_forced")
    proc, report = playbook("verify.yml", "--check", "-e", "release_allow_writes=false")
    assert proc.returncode != 0
    assert report["verdict"] == "NO-GO"
    assert "rls.enabled_forced" in report["failing"]


def test_backup_drill_playbook_is_go_and_writes_the_marker(playbook, stack):
    os.unlink(stack.backup_marker)
    proc, report = playbook("backup_drill.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert report["verdict"] == "GO"
    assert os.path.exists(stack.backup_marker)


def test_backup_drill_playbook_drills_the_latest_dump_and_a_given_file(playbook, stack):
    # The role's default keeps the new dump (backup_drill_keep_dump: true): the later drills read an existing one,
    # which the module would refuse to "keep" - the role passes keep_dump only for a new dump.
    proc, report = playbook("backup_drill.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    kept = report["criteria"][[c["criterion"] for c in report["criteria"]].index("backup.drill")]["records"][0]
    dump = kept["evidence"]["dump"]["file"]
    assert os.path.dirname(dump) == stack.backup_dir and os.path.exists(dump)
    for extra in (["-e", "backup_drill_source=latest"],
                  ["-e", "backup_drill_source=file", "-e", "backup_drill_dump_file=%s" % dump]):
        proc, report = playbook("backup_drill.yml", *extra)
        assert proc.returncode == 0, (extra, proc.stdout[-3000:])
        assert report["verdict"] == "GO", (extra, report["reasons"])
        assert report["input_errors"] == []
        drill = report["criteria"][[c["criterion"] for c in report["criteria"]].index("backup.drill")]["records"][0]
        assert drill["status"] == "pass" and drill["evidence"]["dump"]["file"] == dump
    assert os.path.exists(dump)  # an existing dump is never removed


@pytest.mark.parametrize("name, extra, option", [
    ("backup_drill.yml", ["-e", "backup_drill_source=file"], "dump_file"),
    ("verify.yml", ["-e", '{"verify_extra_probes": [{"kind": "tls"}]}'], "kind tls needs an https:// URL"),
], ids=["backup_drill", "verify"])
def test_a_failed_check_task_reaches_the_gate_once(playbook, name, extra, option):
    proc, report = playbook(name, *extra)
    assert proc.returncode != 0
    assert report is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert report["verdict"] == "NO-GO-INCONCLUSIVE"
    assert len(report["input_errors"]) == 1, report["input_errors"]
    assert option in report["input_errors"][0]
    assert "1 input error" in " ".join(report["reasons"])


@pytest.mark.parametrize("same_dsn", [False, True], ids=["no-target", "same-dsn"])
def test_the_backup_drill_role_refuses_the_sources_server_unless_allowed(playbook, stack, tmp_path, same_dsn):
    source_dsn = inventory_vars(stack.facts())["db_dsn"]
    overrides = {"backup_drill_allow_source_server": False}
    if same_dsn:
        overrides["backup_drill_target_dsn"] = source_dsn
    extra = tmp_path / "drill-target.json"
    extra.write_text(json.dumps(overrides))
    proc, report = playbook("backup_drill.yml", "-e", "@%s" % extra)
    assert proc.returncode != 0
    assert report is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
    passing = [c["criterion"] for c in report["criteria"] if c["outcome"] == "pass"]
    assert report["verdict"] != "GO" and "backup.drill" not in passing
    (error,) = report["input_errors"]
    # One server under one address: the check names the same DSN, else the same cluster (found before the address).
    reason = "same DSN" if same_dsn else "same PostgreSQL cluster, system identifier "
    assert "refusing to restore on the source's server (%s" % reason in error
    assert "unless backup_drill_allow_source_server: true" in error
    password = stack.facts()["db"]["superuser_password"]
    assert password not in proc.stdout and password not in json.dumps(report)


def test_two_verify_runs_keep_two_reports_and_latest_is_the_second(playbook, stack, tmp_path):
    """A nightly verify no longer overwrites the release's report: each run has its own folder (time, playbook,
    release label) and latest is the newest."""
    proc, first = playbook("verify.yml", "-e", "release_label=v1.2.3")
    assert proc.returncode == 0 and first["verdict"] == "GO", proc.stdout[-3000:]
    stack.fresh_rate_window()
    stack.set_fault("rls_not_forced")
    proc, second = playbook("verify.yml", "-e", "release_label=v1.2.4")
    assert proc.returncode != 0 and second["verdict"] == "NO-GO", proc.stdout[-3000:]
    artifacts = tmp_path / "artifacts"
    runs = sorted((p for p in artifacts.iterdir() if p.is_dir() and not p.is_symlink()), key=lambda p: p.name)
    assert [p.name.split("-", 1)[1] for p in runs] == ["verify-v1.2.3", "verify-v1.2.4"]
    assert json.loads((runs[0] / "gonogo.json").read_text())["verdict"] == "GO"
    assert json.loads((runs[1] / "gonogo.json").read_text())["verdict"] == "NO-GO"
    assert (artifacts / "latest").resolve() == runs[1]

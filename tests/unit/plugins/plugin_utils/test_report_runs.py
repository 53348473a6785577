"""Reports people keep: a folder per gate decision under the artifacts directory, ``latest`` pointing at the newest,
the top-level report names as links into it, retention of the newest N folders the collection made, and the
set_stats data (findings with whole summaries, gonogo.md bounded with a note)."""
from __future__ import annotations

import datetime
import json
import os

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import make_record
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils import decision, report_runs, reports

CANARY = "CANARY-runs-3f9a1d"
START = datetime.datetime(2026, 12, 7, 4, 45, 1, tzinfo=datetime.timezone.utc)


def decide(status="pass", minutes=0, release="v1.2.3", summary=None, secrets=()):
    """A real decision at a fake clock's time (START + minutes)."""
    records = [make_record("health.liveness", "pass", "GET /healthz 200"),
               make_record("health.readiness", status, summary or "GET /readyz %s" % status)]
    return decision.evaluate(records=records, release=release, now=START + datetime.timedelta(minutes=minutes),
                             secrets=secrets)


def test_run_folder_names_say_when_what_and_which_release():
    assert report_runs.run_folder_name("2026-12-07T04:45:01Z", "playbooks/verify.yml", "v1.2.3") == \
        "20261207T044501Z-verify-v1.2.3"
    assert report_runs.run_folder_name("2026-12-07T04:45:01Z", "/x/release.yaml", "") == "20261207T044501Z-release"
    assert report_runs.run_folder_name("2026-12-07T04:45:01Z", "", "v1 +build/../7") == "20261207T044501Z-run-v1-build-..-7"
    assert "/" not in report_runs.run_folder_name("2026-12-07T04:45:01Z", "a b.yml", "../../etc")


def test_two_runs_keep_two_reports_and_latest_points_at_the_second(tmp_path):
    first, first_dir, removed, warnings = report_runs.write_run(decide("pass"), str(tmp_path), "verify.yml")
    second, second_dir, dummy, warnings2 = report_runs.write_run(decide("fail", minutes=1), str(tmp_path), "verify.yml")
    assert (removed, warnings, warnings2) == ([], [], [])
    assert os.path.basename(first_dir) == "20261207T044501Z-verify-v1.2.3"
    assert os.path.basename(second_dir) == "20261207T044601Z-verify-v1.2.3"
    assert json.loads(open(first["json"]).read())["verdict"] == "GO"  # the GO report survives the NO-GO one
    assert json.loads(open(second["json"]).read())["verdict"] == "NO-GO"
    assert os.readlink(str(tmp_path / "latest")) == "20261207T044601Z-verify-v1.2.3"  # relative: the tree can move
    # the single-folder layout's names still read the newest report
    assert json.loads((tmp_path / "gonogo.json").read_text())["verdict"] == "NO-GO"
    assert (tmp_path / "gonogo.md").read_text().startswith("# Release gate: NO-GO")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.is_symlink()) == [
        "20261207T044501Z-verify-v1.2.3", "20261207T044601Z-verify-v1.2.3"]


def test_two_decisions_in_one_second_get_two_folders(tmp_path):
    dummy, first_dir, dummy2, dummy3 = report_runs.write_run(decide("pass"), str(tmp_path), "release.yml")
    dummy, second_dir, dummy2, dummy3 = report_runs.write_run(decide("fail"), str(tmp_path), "release.yml")
    assert os.path.basename(second_dir) == os.path.basename(first_dir) + "-2"
    assert report_runs.run_folders(str(tmp_path)) == [os.path.basename(first_dir), os.path.basename(second_dir)]
    assert os.readlink(str(tmp_path / "latest")) == os.path.basename(second_dir)


def test_retention_removes_the_oldest_only_and_never_what_the_collection_did_not_make(tmp_path):
    foreign = ["20200101T000000Z-verify-mine", "notes", "preflight"]
    for name in foreign:  # a look-alike without the marker, a user's folder, a nested gate's own directory
        (tmp_path / name).mkdir()
        (tmp_path / name / "keep.txt").write_text("not the collection's")
    made = [os.path.basename(report_runs.write_run(decide(minutes=i), str(tmp_path), "verify.yml", keep=3)[1])
            for i in range(3)]
    paths, newest, removed, warnings = report_runs.write_run(decide(minutes=3), str(tmp_path), "verify.yml", keep=3)
    assert removed == [made[0]] and warnings == []
    assert report_runs.run_folders(str(tmp_path)) == made[1:] + [os.path.basename(newest)]
    for name in foreign:
        assert (tmp_path / name / "keep.txt").read_text() == "not the collection's"
    assert os.readlink(str(tmp_path / "latest")) == os.path.basename(newest)


def test_keep_zero_keeps_every_run(tmp_path):
    for i in range(4):
        removed = report_runs.write_run(decide(minutes=i), str(tmp_path), "verify.yml", keep=0)[2]
        assert removed == []
    assert len(report_runs.run_folders(str(tmp_path))) == 4


def test_old_flat_reports_become_links_and_a_real_latest_directory_is_left_alone(tmp_path):
    (tmp_path / "gonogo.json").write_text('{"verdict": "GO"}')  # what earlier releases wrote
    (tmp_path / "latest").mkdir()
    (tmp_path / "latest" / "mine.txt").write_text("a user's folder")
    paths, run_dir, dummy, warnings = report_runs.write_run(decide("fail"), str(tmp_path), "verify.yml")
    assert (tmp_path / "latest" / "mine.txt").read_text() == "a user's folder"
    assert warnings and "did not create" in warnings[0] and str(tmp_path / "latest") in warnings[0]
    assert os.path.islink(str(tmp_path / "gonogo.json"))
    assert json.loads(open(paths["json"]).read())["verdict"] == "NO-GO"


def test_a_failed_write_leaves_no_half_made_folder_and_latest_unchanged(tmp_path, monkeypatch):
    dummy, first_dir, dummy2, dummy3 = report_runs.write_run(decide("pass"), str(tmp_path), "verify.yml")

    def no_space(report, directory):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report_runs.reports, "write_reports", no_space)
    try:
        report_runs.write_run(decide("fail", minutes=1), str(tmp_path), "verify.yml")
        raise AssertionError("the write error was swallowed")
    except OSError as exc:
        assert exc.errno == 28
    assert report_runs.run_folders(str(tmp_path)) == [os.path.basename(first_dir)]
    assert os.readlink(str(tmp_path / "latest")) == os.path.basename(first_dir)


def test_stats_carry_the_findings_with_whole_summaries_and_the_markdown():
    long_summary = "app1: GET /readyz 503 " + "x" * 300 + " fix: run alembic upgrade head"
    report = decide("fail", summary=long_summary)
    data = reports.stats(report, {"json": "/r/gonogo.json"}, "/r")
    assert data["gonogo_failing"] == ["health.readiness"]
    assert data["gonogo_findings"] == [{"criterion": "health.readiness", "outcome": "fail", "hosts": ["-"],
                                        "summary": long_summary}]  # whole: the fix is often at the end
    assert data["gonogo_markdown"] == reports.render_markdown(report)
    assert data["gonogo_report"]["markdown_cut"] is False and data["gonogo_report"]["run_dir"] == "/r"
    assert "gonogo_markdown" not in reports.stats(report, None, None, 0)


def test_stats_markdown_is_bounded_with_a_note_when_cut():
    report = decide("fail", summary="é" * 150)  # multi-byte: the bound is in bytes
    whole = reports.render_markdown(report)
    limit = len(whole.encode("utf-8")) // 2
    data = reports.stats(report, None, "/srv/artifacts/20261207T044501Z-verify-v1.2.3", limit)
    text = data["gonogo_markdown"]
    assert len(text.encode("utf-8")) <= limit
    assert data["gonogo_report"]["markdown_cut"] is True
    assert text.startswith("# Release gate: NO-GO")
    assert "Cut at %d bytes of %d" % (limit, len(whole.encode("utf-8"))) in text
    assert "/srv/artifacts/20261207T044501Z-verify-v1.2.3" in text


def test_stats_never_carry_a_secret():
    report = decide("fail", summary="viewer login with %s accepted" % CANARY, secrets=[CANARY])
    assert CANARY not in json.dumps(reports.stats(report))


def test_a_bound_smaller_than_the_note_is_still_kept():
    text, cut = reports.bounded_markdown("# Release gate: GO\n" + "x" * 500, 40, "/srv/artifacts/run")
    assert cut is True and len(text.encode("utf-8")) <= 40 and "Cut at 40 bytes" in text

from __future__ import annotations

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import check_result as cr


def test_make_record_shape():
    record = cr.make_record("health.liveness", cr.PASS, "200 ok", evidence={"status": 200}, duration_ms=12.345)
    assert record == {
        "criterion": "health.liveness", "name": "health.liveness", "status": "pass", "blocking": True,
        "summary": "200 ok", "evidence": {"status": 200}, "duration_ms": 12.3,
    }


def test_make_record_rejects_unknown_status():
    with pytest.raises(ValueError):
        cr.make_record("health.liveness", "ok", "nope")


@pytest.mark.parametrize("statuses, expected", [
    (["pass", "fail", "error"], "error"),
    (["pass", "fail", "skipped"], "fail"),
    (["skipped", "pass"], "pass"),
    (["skipped"], "skipped"),
    ([], "skipped"),
])
def test_worst_status(statuses, expected):
    assert cr.worst_status(statuses) == expected


def test_summarize_lets_blocking_records_decide():
    records = [
        cr.make_record("rls.coverage", cr.FAIL, "95 tables without RLS", blocking=False),
        cr.make_record("rls.enabled_forced", cr.PASS, "all forced"),
    ]
    overview = cr.summarize(records)
    assert overview["status"] == "pass"
    assert overview["counts"] == {"pass": 1, "fail": 1, "error": 0, "skipped": 0}


def test_summarize_advisory_only_reports_their_worst():
    records = [cr.make_record("smoke.docs", cr.ERROR, "refused", blocking=False)]
    assert cr.summarize(records)["status"] == "error"


def test_stopwatch_uses_the_given_monotonic_clock():
    ticks = iter([10.0, 10.25])
    watch = cr.Stopwatch(clock=lambda: next(ticks))
    assert watch.elapsed_ms == pytest.approx(250.0)


def test_criterion_pattern():
    assert cr.CRITERION_PATTERN.match("migrations.at_head")
    assert not cr.CRITERION_PATTERN.match("Migrations")


def test_join_limited():
    assert cr.join_limited([]) == "(none)"
    assert cr.join_limited(["a", "b"]) == "a, b"
    assert cr.join_limited(["t%d" % i for i in range(5)], limit=2) == "t0, t1 and 3 more"


def test_rollup_takes_the_worst_blocking_status_and_names_it():
    parts = [
        cr.make_record("slo.error_rate", cr.FAIL, "5.0 % > 1 %"),
        cr.make_record("slo.latency_p95", cr.PASS, "120 ms"),
        cr.make_record("smoke.docs", cr.ERROR, "refused", blocking=False),
    ]
    record = cr.rollup_record("canary.step", parts, name="canary.step.10", label="stage 10 %")
    assert record["status"] == "fail" and record["name"] == "canary.step.10"
    assert record["summary"] == "stage 10 %: slo.error_rate fail: 5.0 % > 1 %"
    assert [p["status"] for p in record["evidence"]["parts"]] == ["fail", "pass", "error"]
    assert record["evidence"]["counts"]["pass"] == 1


def test_rollup_of_passes_passes_and_of_nothing_is_an_error():
    ok = cr.rollup_record("soak.window", [cr.make_record("health.liveness", cr.PASS, "200")], label="round 1")
    assert ok["status"] == "pass" and ok["summary"] == "round 1: all 1 checks passed"
    empty = cr.rollup_record("soak.window", [], label="round 2")
    assert empty["status"] == "error" and "nothing was decided" in empty["summary"]


def test_rollup_keeps_extra_evidence_and_ignores_non_records():
    record = cr.rollup_record("soak.window", [None, {"status": "weird"}, cr.make_record("a.b", cr.PASS, "ok")],
                              evidence={"round": 3})
    assert record["evidence"]["round"] == 3 and len(record["evidence"]["parts"]) == 1

"""The gate's reports show each canary stage's measurements (plugins/plugin_utils/stage_measurements.py, reports.py).

The records are made by the real code: slo_analysis's planning and judging (metrics_analysis on scrape windows of
counters and buckets) and canary_state's step, which stamps each record with its stage; then decision.evaluate and
the renderers, as the gate runs them."""
from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import canary_state as cs
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import make_record
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils import decision, reports
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils import stage_measurements as sm

from slo_records import FAULTY_25, HEALTHY_10, cumulative, sequential_stage, stage_analysis

NOW = datetime.datetime(2026, 6, 15, 12, 0, 0, tzinfo=datetime.timezone.utc)
CANARY = "CANARY-stage-5e0c9a"


def canary_run(stages, host="app1", allow_unknown=False):
    """canary_state begin + one step per ``(weight, records)``: the records the canary role hands to the gate."""
    state, dummy = cs.begin(None, "v2026.6.1", [weight for weight, dummy in stages])
    handed = []
    for weight, records in stages:
        state, out, dummy = cs.step(state, weight, records, allow_unknown=allow_unknown)
        handed.extend(out)
    return [{"records": handed, "host": host}]


def report_of(results, **kwargs):
    return decision.evaluate(results=results, now=NOW, **kwargs)


def section(markdown, title):
    """The lines of one ``### title`` subsection."""
    lines = markdown.splitlines()
    start = lines.index(title)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    return lines[start:end]


def test_checked_stage_records_carry_their_stage_and_the_input_is_left_alone():
    records = stage_analysis(*HEALTHY_10)
    state, dummy = cs.begin(None, "v1", [10, 100])
    dummy, handed, accepted = cs.step(state, 10, records)
    assert accepted and all(r["evidence"]["stage"] == {"weight": 10} for r in handed)
    assert handed[-1]["name"] == "canary.step.10" and handed[-1]["evidence"]["weight"] == 10
    assert all("stage" not in r["evidence"] for r in records)  # copies, never the caller's records
    assert [sm.stage_of(r) for r in handed] == [10] * len(handed)
    assert sm.stage_of(make_record("slo.error_rate", "pass", "x")) is None


def test_markdown_has_a_table_per_stage_with_each_slo_records_figures():
    report = report_of(canary_run([(10, stage_analysis(*HEALTHY_10)), (25, stage_analysis(*FAULTY_25))]))
    assert report["verdict"] == decision.NO_GO
    text = reports.render_markdown(report)
    assert "## Measurements by stage" in text
    # the stage tables come before the list of every criterion
    assert text.index("## Measurements by stage") < text.index("## All criteria")
    header = "| %s |" % " | ".join(sm.COLUMNS)
    # the failing records name their stage next to their host
    assert "| slo.error_rate | **FAIL** | app1, stage 25 % | fail | slo.error_rate canary: 5 % &gt; 1 %" in text

    first = section(text, "### Stage 10 % on app1: pass")
    assert first[2] == "stage 10 %: all 3 checks passed"
    assert first[4] == header
    assert first[6:9] == [
        "| slo.error_rate | - | pass | 0.4 % | - | &lt; 1 % | 250 | 1 of 1 | successful |",
        "| slo.latency_p95 | - | pass | 48.27 ms | - | &lt; 300 ms | 250 | 1 of 1 | successful |",
        "| slo.vs_stable | vs_stable_error_rate | pass | 0.4 % | 0.09 % | &lt;= stable + 0.5 % | 250 / 2250 | 1 of 1 "
        "| successful |",
    ]

    second = section(text, "### Stage 25 % on app1: fail")
    assert second[2].startswith("stage 25 %: error_rate fail: slo.error_rate canary: 5 % &gt; 1 %")
    assert second[6:9] == [
        "| slo.error_rate | - | fail | 5 % | - | &lt; 1 % | 600 | 1 of 1 | 5 % &gt; 1 % (needs &lt; 1 %) |",
        "| slo.latency_p95 | - | pass | 47.98 ms | - | &lt; 300 ms | 600 | 1 of 1 | successful |",
        "| slo.vs_stable | vs_stable_error_rate | fail | 5 % | 0.5 % | &lt;= stable + 0.5 % | 600 / 1800 | 1 of 1 "
        "| 5 % vs stable 0.5 %: 4.5 % above, more than 0.5 % allowed |",
    ]


def test_junit_names_the_stage_of_each_slo_case_with_its_figures():
    report = report_of(canary_run([(10, stage_analysis(*HEALTHY_10)), (25, stage_analysis(*FAULTY_25))]))
    root = ET.fromstring(reports.render_junit(report))
    cases = dict((case.get("name"), case) for case in root.iter("testcase"))
    assert sorted(cases) == sorted("%s [app1, stage %d %%]" % (criterion, weight)
                                   for criterion in ("canary.step", "slo.error_rate", "slo.latency_p95", "slo.vs_stable")
                                   for weight in (10, 25))
    assert root.get("tests") == "8" and root.get("failures") == "3"

    failed = cases["slo.vs_stable [app1, stage 25 %]"]
    props = dict((p.get("name"), p.get("value")) for p in failed.find("properties"))
    assert props == {"stage_weight": "25", "vs_stable_error_rate.canary": "5 %", "vs_stable_error_rate.stable": "0.5 %",
                     "vs_stable_error_rate.threshold": "<= stable + 0.5 %",
                     "vs_stable_error_rate.requests": "600 / 1800"}
    assert ("stage 25 %: canary 5 %, stable 0.5 %, threshold <= stable + 0.5 %, requests 600 / 1800, looks 1 of 1"
            in failed.find("failure").text)
    passed = cases["slo.error_rate [app1, stage 10 %]"]
    assert passed.find("failure") is None
    assert "stage 10 %: canary 0.4 %, stable -, threshold < 1 %, requests 250" in passed.find("system-out").text

    # the stage's own case carries the stage's table, one line per SLO record
    step = cases["canary.step [app1, stage 25 %]"].find("failure").text
    table = step.split("SLO measurements of stage 25 % (last look):\n", 1)[1].splitlines()
    assert table[0].split() == ["Criterion", "Metric", "Status", "Canary", "Stable", "Threshold", "Requests",
                                "(canary", "/", "stable)", "Looks", "Last", "look"]
    assert table[1].split()[:7] == ["slo.error_rate", "-", "fail", "5", "%", "-", "<"]
    assert table[3].startswith("slo.vs_stable") and "600 / 1800" in table[3]


def test_the_sequential_judges_looks_fill_the_stage_table():
    """slo_analysis's sequential judge: cumulative counts at each look; a healthy stage passes at its last look, a
    20 % 5xx canary fails at its first look and stops the other metric."""
    healthy = sequential_stage({"canary": cumulative(6, 100), "stable": cumulative(6, 900, slow_every=100)}, count=6)
    faulty = sequential_stage({"canary": cumulative(6, 100, bad_every=5), "stable": cumulative(6, 900)}, count=6)
    text = reports.render_markdown(report_of(canary_run([(10, healthy), (25, faulty)])))
    first = section(text, "### Stage 10 % on app1: pass")
    rows = [line for line in first if line.startswith("| slo.")]
    assert rows[0] == ("| slo.error_rate | - | pass | 0 % | - | &lt;= 1 % | 600 | 6 of 6 | in [0 %, 0.38 %]; 0 bad of 600; "
                       "decision pass |")
    assert rows[1].startswith("| slo.vs_stable | vs_stable_slow | pass | 0 % | 1 % | &lt;= ")
    assert rows[1].endswith(" | 600 / 5400 | 6 of 6 | in [0 %, 0.4 %]; p95 47.5 ms (stable 47.98 ms); 0 bad of 600; "
                            "decision pass |")
    second = [line for line in section(text, "### Stage 25 % on app1: fail") if line.startswith("| slo.")]
    assert second[0].startswith("| slo.error_rate | - | fail | 20 % | - | &lt;= 1 % | 100 | 1 of 6 | lower bound ")
    assert "5xx: 20 % bad of 100; confidently above 1 %" in second[0]
    assert second[1].startswith("| slo.vs_stable | vs_stable_slow | skipped | 0 % | 0 % | &lt;= ")
    assert " | 100 / 900 | 1 of 6 | " in second[1]


def test_an_undecided_stage_accepted_by_allow_unknown_shows_its_records_as_advisory():
    idle = stage_analysis((0, 0, 0), (100, 0, 0))
    report = report_of(canary_run([(10, idle)], allow_unknown=True))
    lines = section(reports.render_markdown(report), "### Stage 10 % on app1: error")
    error_row = [line for line in lines if line.startswith("| slo.error_rate |")][0]
    assert error_row == ("| slo.error_rate | - | error (advisory) | - | - | &lt; 1 % | 0 | 1 of 1 | inconclusive: no "
                         "traffic (0 requests in the 30 s window, min 1) |")


def test_each_host_gets_its_own_stage_tables():
    results = canary_run([(10, stage_analysis(*HEALTHY_10))], host="app1") + \
        canary_run([(10, stage_analysis(*FAULTY_25))], host="app2")
    text = reports.render_markdown(report_of(results))
    assert "### Stage 10 % on app1: pass" in text and "### Stage 10 % on app2: fail" in text
    names = [case.get("name") for case in ET.fromstring(reports.render_junit(report_of(results))).iter("testcase")]
    assert "slo.error_rate [app1, stage 10 %]" in names and "slo.error_rate [app2, stage 10 %]" in names


def test_a_stage_names_its_other_checks_and_a_stage_without_slo_records_says_so():
    alerts = make_record("alerts.firing", "pass", "no firing alert matches deployment=canary")
    split = make_record("canary.step", "pass", "canary at 10 %", name="canary.step.split")
    report = report_of(canary_run([(10, [split, alerts])]))
    lines = section(reports.render_markdown(report), "### Stage 10 % on app1: pass")
    assert "No SLO measurement was recorded in this stage." in lines
    assert "Also checked: alerts.firing pass, canary.step.split pass" in lines


def test_slo_records_without_a_stage_get_one_table_and_other_reports_none():
    report = report_of([{"records": stage_analysis(*HEALTHY_10)}])
    text = reports.render_markdown(report)
    lines = section(text, "### SLO measurements without a stage")
    assert lines[2] == "| %s |" % " | ".join(sm.COLUMNS)
    assert [line.split(" | ")[0] for line in lines[4:]] == ["| slo.error_rate", "| slo.latency_p95", "| slo.vs_stable", ""]
    names = [case.get("name") for case in ET.fromstring(reports.render_junit(report)).iter("testcase")]
    assert names == ["slo.error_rate", "slo.latency_p95", "slo.vs_stable"]  # no stage: one case per criterion
    plain = report_of([{"records": [make_record("health.liveness", "pass", "GET /healthz 200")]}])
    assert "Measurements by stage" not in reports.render_markdown(plain)
    assert ET.fromstring(reports.render_junit(plain)).find(".//testcase/properties") is None


def test_figures_read_a_sequential_judges_look_and_tolerate_missing_fields():
    """Looks of a judge that decides on shares: the judged share, its bounds and limit, bad of total requests, and
    the baseline's own share and total."""
    look = {"index": 4, "outcome": "failed", "share": 0.05, "lower": 0.031, "upper": 0.079, "limit": 0.01,
            "bad": 30, "total": 600, "decision": "fail", "value": 0.0475,
            "baseline": {"share": 0.005, "bad": 9, "total": 1800}, "reason": "confidently worse than stable"}
    record = make_record("slo.vs_stable", "fail", "worse", name="vs_stable_error_rate",
                         evidence={"metric": {"unit": "seconds"}, "measurements": [look],
                                   "counts": {"measurements": 4}, "limits": {"count": 10}})
    assert sm.figures(record) == {
        "canary": "5 %", "stable": "0.5 %", "threshold": "<= 1 %", "requests": "600 / 1800", "looks": "4 of 10",
        "note": "in [3.1 %, 7.9 %]; confidently worse than stable"}
    # the judge's flat shape: baseline_share and baseline_total, the raw p95s as evidence, no upper bound before the
    # stage's last look
    flat = dict(look, baseline=None, baseline_share=0.004, baseline_total=1500, upper=None, p95=0.0475,
                baseline_p95=0.0472, reason=None)
    record["evidence"]["measurements"] = [flat]
    assert sm.figures(record)["stable"] == "0.4 %" and sm.figures(record)["requests"] == "600 / 1500"
    assert sm.figures(record)["note"] == "lower bound 3.1 %; p95 47.5 ms (stable 47.2 ms); 30 bad of 600; decision fail"
    # an error record without any measurement, and JSON's NaN text
    bare = make_record("slo.error_rate", "error", "Prometheus did not answer")
    assert sm.figures(bare) == {"canary": "-", "stable": "-", "threshold": "-", "requests": "-", "looks": "-",
                                "note": ""}
    nan = make_record("slo.latency_p95", "error", "NaN", evidence={
        "metric": {"unit": "seconds", "condition": {"op": "lt", "value": 0.3}},
        "measurements": [{"outcome": "inconclusive", "value": "NaN", "reason": "inconclusive: the value is NaN"}]})
    assert sm.figures(nan)["canary"] == "NaN" and sm.figures(nan)["threshold"] == "< 300 ms"
    odd = make_record("slo.error_rate", "pass", "x",
                      evidence={"measurements": ["not a look", None], "metric": "x", "stage": {"weight": "ten"}})
    assert sm.figures(odd)["canary"] == "-" and sm.stage_of(odd) is None


@pytest.mark.parametrize("lower", [False, True])
def test_thresholds_of_a_comparison_say_which_way_is_worse(lower):
    compare = {"baseline_label": "stable", "max_increase": 0.01, "max_increase_ratio": 0.5}
    if lower:
        compare["worse"] = "lower"
    record = make_record("slo.vs_stable", "pass", "x", evidence={
        "metric": {"unit": "ratio", "compare": compare}, "measurements": [{"value": 0.99, "baseline": 0.995}]})
    expected = ">= stable - 1 % and >= stable x 0.5" if lower else "<= stable + 1 % and <= stable x 1.5"
    assert sm.figures(record)["threshold"] == expected


def test_stage_tables_never_show_a_secret(tmp_path):
    records = stage_analysis(*FAULTY_25)
    records[0]["evidence"]["measurements"][0]["reason"] = "5 %% > 1 %% at http://ops:%s@127.0.0.1:18101/metrics" % CANARY
    records[0]["evidence"]["metric"]["query"] = 'sum(x{token="%s"})' % CANARY
    report = report_of(canary_run([(10, records)]), secrets=[CANARY])
    paths = reports.write_reports(report, str(tmp_path))
    for kind in ("json", "markdown", "junit"):
        with open(paths[kind], encoding="utf-8") as handle:
            assert CANARY not in handle.read(), kind
    assert "### Stage 10 % on app1: fail" in reports.render_markdown(report)

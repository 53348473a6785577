"""The metrics analysis as logic: planning (every impossible input refused naming the option), the judgement of one
measurement, the phases of a metric (Argo's limits, no data never a pass), the analysis loop on a fake clock (ticks,
fail fast, dry run, the deadline), the scrape windows (counter resets, quantiles, traffic) and the records."""
from __future__ import annotations

import math

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import metrics_analysis as ma
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.waiter import Deadline
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.metrics_sources import Snapshot, SourceError

from scripted_http import FakeClock

ERROR_RATE = {"name": "error_rate", "query": "sum(rate(x[1m]))", "condition": {"op": "lt", "value": 0.01},
              "variant": "canary"}


def params(metrics, source="prometheus", **extra):
    base = {"source": source, "deadline": 600.0, "metrics": metrics, "defaults": {},
            "prometheus": {"url": "http://127.0.0.1:9090"} if source == "prometheus" else None,
            "scrape": None}
    if source == "scrape":
        base["scrape"] = {"targets": [{"variant": "canary", "url": "http://127.0.0.1:8001/metrics"},
                                      {"variant": "stable", "url": "http://127.0.0.1:8002/metrics"}]}
    base.update(extra)
    return base


def plan_error(metrics, **kwargs):
    with pytest.raises(ma.AnalysisInputError) as info:
        ma.plan_analysis(params(metrics, **kwargs))
    return str(info.value)


def metric(raw=None, source="prometheus", defaults=None, variants=("canary", "stable")):
    return ma.plan_metric(0, dict(raw or ERROR_RATE), defaults or {}, source, set(variants))


# ------------------------------------------------------------------------------------------ planning

def test_plan_refuses_what_can_never_be_measured_naming_the_option():
    bad_op = dict(ERROR_RATE, condition={"op": "lessthan", "value": 0.01})
    assert plan_error([ERROR_RATE, dict(bad_op, name="b")]) == (
        "metrics[1].condition.op: unknown operator 'lessthan'; use one of lt, le, gt, ge, eq, ne")
    assert "metrics[0].condition.value must be a finite number" in plan_error(
        [dict(ERROR_RATE, condition={"op": "lt", "value": float("nan")})])
    assert plan_error([ERROR_RATE, ERROR_RATE]) == "metrics[1].name 'error_rate' is used twice"
    assert "metrics[0]: give a kind (counted from prometheus.variants) or a query" in plan_error(
        [dict(ERROR_RATE, kind="error_rate")])
    assert "metrics[0].kind with source=prometheus needs prometheus.variants" in plan_error(
        [dict(ERROR_RATE, kind="error_rate", query=None)])
    assert "metrics[0].query is required with source=prometheus" in plan_error([dict(ERROR_RATE, query=None)])
    assert "metrics[0].query needs source=prometheus; with source=scrape set metrics[0].kind" in plan_error(
        [ERROR_RATE], source="scrape")
    assert "metrics[0]: variant 'canry' is not a variant of scrape.targets (canary, stable)" in plan_error(
        [{"name": "e", "kind": "error_rate", "variant": "canry", "condition": {"op": "lt", "value": 0.01}}],
        source="scrape")
    assert "metrics[0].failure_limit (3) must be less than count (3)" in plan_error(
        [dict(ERROR_RATE, failure_limit=3, count=3)])
    assert "metrics[0].criterion: 'slo.error-rate' is not a criterion id" in plan_error(
        [dict(ERROR_RATE, name="error-rate")])
    assert "metrics[0] needs a condition, a compare or both" in plan_error([dict(ERROR_RATE, condition=None)])
    assert "metrics[0].traffic.query is required with source=prometheus" in plan_error(
        [dict(ERROR_RATE, traffic={"min": 5})])
    assert "metrics[0].traffic.query needs a PromQL metrics[].query" in plan_error(
        [{"name": "e", "kind": "error_rate", "variant": "canary", "condition": {"op": "lt", "value": 0.01},
          "traffic": {"query": "x", "min": 1}}], source="scrape")
    assert "metrics[0].compare.baseline_query is required with a PromQL metrics[].query" in plan_error(
        [dict(ERROR_RATE, compare={"baseline_variant": "stable", "max_increase": 0.01})])
    assert "metrics[0].compare cannot be used with range" in plan_error(
        [dict(ERROR_RATE, range={"seconds": 60, "step": 5}, compare={"baseline_query": "y", "max_increase": 1})])
    assert "metrics[0].range.step (90) is longer than range.seconds (60)" in plan_error(
        [dict(ERROR_RATE, range={"seconds": 60, "step": 90})])
    assert "metrics[0].quantile must be between 0 and 1" in plan_error(
        [{"name": "p", "kind": "latency_quantile", "variant": "canary", "quantile": 95,
          "condition": {"op": "lt", "value": 0.3}}], source="scrape")


def test_plan_checks_the_schedule_against_the_deadline_and_the_call_has_something_to_do():
    message = plan_error([dict(ERROR_RATE, count=5, interval=60)], deadline=200.0)
    assert message == "metrics[0]: 5 measurements 60 s apart take 240 s, not less than deadline (200.0 s)"
    message = plan_error([{"name": "e", "kind": "error_rate", "variant": "canary", "count": 2, "interval": 60,
                           "condition": {"op": "lt", "value": 0.01}}], source="scrape", deadline=100.0)
    assert "take 120 s (the first read is the baseline)" in message
    assert plan_error([]) == "nothing to analyse: give metrics, require_targets or require_rules"
    assert plan_error([], source="scrape", require_targets=["clean-api"]) == (
        "require_targets and require_rules ask Prometheus: set prometheus")
    assert "prometheus.url" in plan_error([ERROR_RATE], prometheus={"url": "ftp://x"})


def test_defaults_apply_where_a_metric_sets_nothing_and_units_follow_kind_or_criterion():
    defaults = {"interval": 10.0, "count": 5, "variant": "canary", "traffic": {"query": "sum(x)", "min": 20.0}}
    planned = metric(dict(ERROR_RATE, variant=None, count=2), defaults=defaults)
    assert (planned.interval, planned.count, planned.variant) == (10.0, 2, "canary")
    assert planned.traffic == {"query": "sum(x)", "min": 20.0}
    assert planned.unit == "ratio" and planned.criterion == "slo.error_rate" and planned.gating
    p95 = metric({"name": "latency_p95", "query": "q", "condition": {"op": "lt", "value": 0.3}})
    assert p95.unit == "seconds"
    scrape = metric({"name": "x", "kind": "availability", "variant": "canary", "condition": {"op": "ge", "value": 0.99},
                     "compare": {"baseline_variant": "stable", "max_increase": 0.01}}, source="scrape")
    assert scrape.unit == "ratio" and scrape.compare["worse"] == "lower" and scrape.traffic == {"min": 1.0}
    dry = metric(dict(ERROR_RATE, dry_run=True))
    assert not dry.blocking and not dry.gating


# ------------------------------------------------------------------------------------------ judging

def judged(planned, value, baseline=None):
    return ma.judge(planned, ma.Measurement(0.0), value, baseline)


def test_judge_conditions_nan_and_comparisons():
    planned = metric()
    assert judged(planned, 0.004).outcome == "successful"
    failed = judged(planned, 0.051)
    assert failed.outcome == "failed" and failed.reason == "5.1 % > 1 % (needs < 1 %)"
    for value, text in ((float("nan"), "NaN"), (float("inf"), "+Inf"), (float("-inf"), "-Inf")):
        measurement = judged(planned, value)
        assert measurement.outcome == "inconclusive" and measurement.reason == "inconclusive: the value is %s" % text
        assert measurement.as_dict()["value"] == text  # JSON has no NaN
    ratio = metric({"name": "vs_stable", "query": "q", "unit": "seconds",
                    "compare": {"baseline_query": "b", "max_increase_ratio": 0.5}})
    assert judged(ratio, 0.3, 0.25).outcome == "successful"
    worse = judged(ratio, 0.412, 0.25)
    assert worse.outcome == "failed"
    assert worse.reason == "412 ms vs stable 250 ms: 162 ms above, 64.8 % more than 50 % allowed"
    assert worse.detail["degradation"] == pytest.approx(0.162)
    assert judged(ratio, 0.3, float("nan")).reason == "inconclusive: the stable baseline is NaN"
    # a baseline of 0 allows no increase by ratio
    assert "infinitely (the baseline is 0)" in judged(ratio, 0.001, 0.0).reason
    absolute = metric({"name": "vs_stable", "query": "q", "unit": "ratio",
                       "compare": {"baseline_query": "b", "max_increase": 0.005, "max_increase_ratio": 10}})
    assert judged(absolute, 0.004, 0.0).outcome == "failed"  # each bound given must hold
    assert judged(absolute, 0.004, 0.001).outcome == "successful"
    lower = metric({"name": "availability", "query": "q", "criterion": "slo.vs_stable", "unit": "ratio",
                    "compare": {"baseline_query": "b", "max_increase": 0.01, "worse": "lower"}})
    assert judged(lower, 0.995, 0.999).outcome == "successful"
    assert judged(lower, 0.97, 0.999).reason == "97 % vs stable 99.9 %: 2.9 % below, more than 1 % allowed"


def series(*label_sets):
    return [(labels, [(1000.0, 1.0)]) for labels in label_sets]


class Result:
    def __init__(self, items, result_type="vector"):
        self.series = items
        self.result_type = result_type


def test_one_series_expected_names_the_labels_that_differ():
    with pytest.raises(ma.Inconclusive) as info:
        ma.single_series(Result(series({"job": "api-canary", "instance": "a"}, {"job": "api-canary", "instance": "b"})),
                         "query")
    assert str(info.value) == ("the query returned 2 series where one is expected (they differ in instance); "
                               "aggregate them (sum, max) or narrow the selector")
    with pytest.raises(ma.Inconclusive) as info:
        ma.single_series(Result([]), "query")
    assert str(info.value) == "no data: the query returned an empty vector"


# ------------------------------------------------------------------------------------------ phases

def run_of(planned, outcomes):
    run = ma.MetricRun(planned)
    for outcome in outcomes:
        measurement = ma.Measurement(0.0)
        measurement.outcome = outcome
        measurement.reason = outcome
        run.add(measurement)
        if run.phase:
            break
    return run


def test_phases_follow_argo_limits_and_no_data_is_never_a_pass():
    assert run_of(metric(dict(ERROR_RATE, count=3)), ["successful"] * 3).phase == "Successful"
    assert run_of(metric(dict(ERROR_RATE, count=3)), ["successful", "failed"]).phase == "Failed"
    tolerant = metric(dict(ERROR_RATE, count=3, failure_limit=1))
    assert run_of(tolerant, ["failed", "successful", "successful"]).phase == "Successful"
    assert run_of(tolerant, ["failed", "successful", "failed"]).phase == "Failed"
    assert run_of(metric(dict(ERROR_RATE, count=3)), ["inconclusive"]).phase == "Inconclusive"
    lenient = metric(dict(ERROR_RATE, count=2, failure_limit=1, inconclusive_limit=1))
    assert run_of(lenient, ["failed", "inconclusive"]).phase == "Inconclusive"  # no successful measurement at all
    # errors are retried: they do not count towards count, and more than the limit in a row is an Error
    errors = run_of(metric(dict(ERROR_RATE, count=2, consecutive_error_limit=2)),
                    ["error", "error", "successful", "error", "error", "successful"])
    assert errors.phase == "Successful" and errors.taken == 2 and errors.counts["error"] == 4
    assert run_of(metric(dict(ERROR_RATE, count=2, consecutive_error_limit=2)), ["error"] * 3).phase == "Error"


# ------------------------------------------------------------------------------------------ the loop

class ScriptedRounds:
    """Per metric name a list of (outcome, value) consumed per tick; records the fake time of each tick."""

    def __init__(self, clock, script, cost=0.0):
        self.clock = clock
        self.script = dict((name, list(items)) for name, items in script.items())
        self.ticks = []
        self.cost = cost

    def measure(self, runs):
        self.ticks.append((self.clock(), [run.metric.name for run in runs]))
        self.clock.now += self.cost
        results = []
        for run in runs:
            outcome, value = self.script[run.metric.name].pop(0)
            measurement = ma.Measurement(self.clock())
            if outcome == "baseline":
                results.append(None)
                continue
            if outcome == "error":
                measurement.error("Prometheus at http://127.0.0.1:9090 did not answer: connection refused")
            else:
                ma.judge(run.metric, measurement, value)
            results.append(measurement)
        return results


def analysis_of(metrics, script, deadline=600.0, cost=0.0):
    clock = FakeClock()
    rounds = ScriptedRounds(clock, script, cost)
    analysis = ma.Analysis(metrics, rounds, Deadline(deadline, clock=clock), clock=clock, sleep=clock.sleep)
    return analysis, rounds, clock


def named(raw, name, **extra):
    return dict(raw, name=name, **extra)


def test_metrics_share_ticks_and_a_blocking_failure_stops_the_call_at_once():
    metrics = [metric(named(ERROR_RATE, "error_rate", count=3, interval=10)),
               ma.plan_metric(1, named(ERROR_RATE, "latency_p95", count=3, interval=10,
                                       condition={"op": "lt", "value": 0.3}), {}, "prometheus", set())]
    analysis, rounds, clock = analysis_of(metrics, {"error_rate": [("ok", 0.001), ("ok", 0.051)],
                                                    "latency_p95": [("ok", 0.1), ("ok", 0.12)]})
    runs = analysis.run()
    assert [names for _t, names in rounds.ticks] == [["error_rate", "latency_p95"]] * 2
    assert [t - 1000.0 for t, _n in rounds.ticks] == [0.0, 10.0]
    assert runs[0].phase == "Failed" and runs[1].phase == "Stopped"
    assert analysis.phase() == "Failed" and analysis.failed_by is runs[0]
    record = ma.metric_record(runs[1], 1.0)
    assert record["status"] == "skipped"
    assert record["evidence"]["skip_reason"] == "stopped after 2 of 3 measurements: error_rate failed"
    failed = ma.metric_record(runs[0], 1.0)
    assert failed["summary"] == "slo.error_rate canary: 5.1 % > 1 % (needs < 1 %) at measurement 2 of 3"
    assert clock.now - 1000.0 == 10.0  # decided at the failing tick, no wait for the remaining measurement


def test_dry_run_and_non_blocking_failures_never_stop_the_call():
    metrics = [metric(named(ERROR_RATE, "error_rate", count=2, interval=5, dry_run=True)),
               ma.plan_metric(1, named(ERROR_RATE, "other", count=2, interval=5), {}, "prometheus", set())]
    analysis, _rounds, _clock = analysis_of(metrics, {"error_rate": [("ok", 0.5)], "other": [("ok", 0.0), ("ok", 0.0)]})
    runs = analysis.run()
    assert [r.phase for r in runs] == ["Failed", "Successful"] and analysis.failed_by is None
    assert analysis.phase() == "Successful"  # the dry-run metric does not decide
    record = ma.metric_record(runs[0], 1.0)
    assert record["status"] == "fail" and record["blocking"] is False
    assert record["summary"].endswith("[dry run: reported, never blocks]")


def test_errors_are_measured_again_and_the_deadline_ends_an_undecided_metric():
    planned = metric(named(ERROR_RATE, "error_rate", count=3, interval=10))
    analysis, rounds, _clock = analysis_of([planned], {"error_rate": [("error", None), ("ok", 0.0), ("ok", 0.0),
                                                                      ("ok", 0.0)]}, deadline=35.0)
    runs = analysis.run()
    assert len(rounds.ticks) == 4 and runs[0].phase == "Successful" and runs[0].counts["error"] == 1
    analysis, rounds, _clock = analysis_of([planned], {"error_rate": [("error", None)] * 4}, deadline=25.0)
    runs = analysis.run()
    assert runs[0].phase == "Error" and len(rounds.ticks) == 3
    record = ma.metric_record(runs[0], 1.0)
    assert record["status"] == "error" and record["summary"].startswith(
        "slo.error_rate canary: error: the deadline (25 s) passed after 0 of 3 measurements; last: Prometheus at")
    analysis, rounds, _clock = analysis_of([planned], {"error_rate": [("ok", 0.0)] * 3}, deadline=15.0)
    runs = analysis.run()
    record = ma.metric_record(runs[0], 1.0)
    assert runs[0].phase == "Inconclusive" and record["evidence"]["outcome"] == "inconclusive"
    assert record["summary"] == "slo.error_rate canary: inconclusive: the deadline (15 s) passed after 2 of 3 measurements"


def test_an_unexpected_exception_is_an_error_measurement_never_a_traceback():
    class Broken:
        def measure(self, runs):
            raise KeyError("le")
    clock = FakeClock()
    planned = metric(named(ERROR_RATE, "error_rate", count=1, consecutive_error_limit=0))
    analysis = ma.Analysis([planned], Broken(), Deadline(60, clock=clock), clock=clock, sleep=clock.sleep)
    run = analysis.run()[0]
    assert run.phase == "Error" and run.measurements[0].reason == "internal error: KeyError: 'le'"


def test_a_slow_tick_runs_the_next_at_once_instead_of_drifting():
    planned = metric(named(ERROR_RATE, "error_rate", count=3, interval=2))
    analysis, rounds, _clock = analysis_of([planned], {"error_rate": [("ok", 0.0)] * 3}, cost=3.0)
    analysis.run()
    assert [t - 1000.0 for t, _n in rounds.ticks] == [0.0, 3.0, 6.0]


def test_records_map_phases_to_statuses_and_carry_the_series():
    planned = metric(named(ERROR_RATE, "error_rate", count=3))
    ok = run_of(planned, [])
    for value in (0.001, 0.004, 0.002):
        ok.add(judged(planned, value))
    record = ma.metric_record(ok, 12.0)
    assert record["status"] == "pass" and record["criterion"] == "slo.error_rate"
    assert record["summary"] == "slo.error_rate canary: 3 of 3 measurements successful, < 1 % (worst 0.4 %)"
    assert [m["value"] for m in record["evidence"]["measurements"]] == [0.001, 0.004, 0.002]
    assert record["evidence"]["metric"]["query"] == ERROR_RATE["query"]
    assert record["evidence"]["counts"]["measurements"] == 3
    none = ma.MetricRun(planned)
    measurement = ma.Measurement(0.0).inconclusive("no traffic (0 requests in the window, min 1)")
    none.add(measurement)
    record = ma.metric_record(none, 1.0)
    assert record["status"] == "error" and record["evidence"]["outcome"] == "inconclusive"
    assert record["summary"] == ("slo.error_rate canary: inconclusive: no traffic (0 requests in the window, min 1) "
                                 "at measurement 1 of 3")


# ------------------------------------------------------------------------------------------ scrape windows

def snapshot(at, requests=None, buckets=None, service="api-canary"):
    """``requests``: {(route, status_class): count}; ``buckets``: {le: count} of one route."""
    samples = {}
    for (route, status), count in (requests or {}).items():
        samples[("http_requests_total", (("method", "GET"), ("route", route), ("service", service),
                                         ("status_class", status)))] = float(count)
    for le, count in (buckets or {}).items():
        samples[("http_request_latency_seconds_bucket", (("le", le), ("method", "GET"), ("route", "/healthz"),
                                                         ("service", service), ("status_class", "2xx")))] = float(count)
    return Snapshot(samples, 1.7e9 + at, at, "http://127.0.0.1/metrics")


def window(before, after):
    return ma.Window([before], [after], dict(ma.SCRAPE_METRICS))


def scrape_metric(kind, **extra):
    raw = {"name": kind, "kind": kind, "variant": "canary", "condition": {"op": "lt", "value": 0.01}}
    raw.update(extra)
    return metric(raw, source="scrape")


def test_scrape_error_rate_handles_counter_resets_and_new_series():
    # /metrics: the scrapes themselves, counted by the service and left out by default
    before = snapshot(0.0, {("/healthz", "2xx"): 1000, ("/v1/estimate", "2xx"): 50, ("/metrics", "2xx"): 10})
    after = snapshot(10.0, {("/healthz", "2xx"): 90, ("/v1/estimate", "2xx"): 60, ("/v1/estimate", "5xx"): 5,
                            ("/metrics", "2xx"): 500})
    # /healthz was reset (1000 -> 90: 90 since the restart), the 5xx series is new (5 since it appeared)
    measured = ma.measure_window(scrape_metric("error_rate"), {"canary": window(before, after)})
    assert measured.outcome == "failed" and measured.value == pytest.approx(5 / 105.0)
    assert measured.detail["traffic"] == 105.0 and measured.detail["window_s"] == 10.0
    scoped = ma.measure_window(scrape_metric("error_rate", match={"route": "/v1/estimate"}),
                               {"canary": window(before, after)})
    assert scoped.value == pytest.approx(5 / 15.0)
    rate = ma.measure_window(scrape_metric("request_rate", condition={"op": "gt", "value": 1}),
                             {"canary": window(before, after)})
    assert rate.outcome == "successful" and rate.value == pytest.approx(10.5)
    avail = ma.measure_window(scrape_metric("availability", condition={"op": "ge", "value": 0.99}),
                              {"canary": window(before, after)})
    assert avail.outcome == "failed" and avail.value == pytest.approx(100 / 105.0)
    counted = ma.Window([before], [after], dict(ma.SCRAPE_METRICS, exclude_routes=[]))
    assert counted.requests({}) == 105.0 + 490.0


def test_scrape_latency_quantile_and_no_traffic_is_inconclusive():
    bounds = ("0.05", "0.1", "0.25", "0.5", "1.0", "+Inf")
    before = snapshot(0.0, {("/healthz", "2xx"): 100}, dict(zip(bounds, (90, 100, 100, 100, 100, 100))))
    after = snapshot(5.0, {("/healthz", "2xx"): 200}, dict(zip(bounds, (100, 110, 150, 200, 200, 200))))
    p95 = ma.measure_window(scrape_metric("latency_quantile", condition={"op": "lt", "value": 0.3}),
                            {"canary": window(before, after)})
    # deltas 10, 10, 50, 100 of 100: rank 95 in (0.25, 0.5]: 0.25 + 0.25 * (95 - 50) / 50
    assert p95.value == pytest.approx(0.475) and p95.outcome == "failed"
    assert p95.reason == "475 ms > 300 ms (needs < 300 ms)"
    idle = ma.measure_window(scrape_metric("error_rate"), {"canary": window(before, before)})
    assert idle.outcome == "inconclusive" and idle.reason == "inconclusive: no traffic (0 requests in the 0 s window, min 1)"


def test_scrape_comparison_needs_traffic_on_the_baseline_too():
    compared = scrape_metric("error_rate", condition=None, compare={"baseline_variant": "stable", "max_increase": 0.01})
    canary = window(snapshot(0.0, {("/healthz", "2xx"): 0}), snapshot(10.0, {("/healthz", "2xx"): 95,
                                                                             ("/healthz", "5xx"): 5}))
    stable_idle = window(snapshot(0.0, {("/healthz", "2xx"): 7}, service="api"),
                         snapshot(10.0, {("/healthz", "2xx"): 7}, service="api"))
    measured = ma.measure_window(compared, {"canary": canary, "stable": stable_idle})
    assert measured.reason == "inconclusive: no traffic on stable (0 requests in the window, min 1)"
    stable = window(snapshot(0.0, {("/healthz", "2xx"): 7}, service="api"),
                    snapshot(10.0, {("/healthz", "2xx"): 207}, service="api"))
    measured = ma.measure_window(compared, {"canary": canary, "stable": stable})
    assert measured.outcome == "failed" and measured.detail["baseline"] == 0.0
    assert measured.reason == "5 % vs stable 0 %: 5 % above, more than 1 % allowed"


class FakeScraper:
    def __init__(self, clock, plan):
        self.clock = clock
        self.plan = plan  # variant -> list of snapshots or SourceError, one per scrape
        self.calls = []

    def scrape(self, target, deadline):
        self.calls.append(target["variant"])
        item = self.plan[target["variant"]].pop(0)
        if isinstance(item, SourceError):
            raise item
        return item


def test_scrape_rounds_scrape_each_target_once_per_tick_and_keep_the_window_across_a_failed_scrape():
    targets = [{"variant": "canary", "url": "http://c/metrics", "index": 0},
               {"variant": "stable", "url": "http://s/metrics", "index": 1}]
    canary = [snapshot(0.0, {("/healthz", "2xx"): 0}), SourceError("http", "the canary target answered HTTP 429"),
              snapshot(20.0, {("/healthz", "2xx"): 100, ("/healthz", "5xx"): 10})]
    stable = [snapshot(0.0, {("/healthz", "2xx"): 0}, service="api")] * 3
    clock = FakeClock()
    scraper = FakeScraper(clock, {"canary": list(canary), "stable": list(stable)})
    rounds = ma.ScrapeRounds(scraper, targets, Deadline(100, clock=clock))
    errors = ma.plan_metric(0, {"name": "error_rate", "kind": "error_rate", "variant": "canary", "count": 2,
                                "interval": 10, "condition": {"op": "lt", "value": 0.5}}, {}, "scrape", {"canary", "stable"})
    rate = ma.plan_metric(1, {"name": "rate", "kind": "requests", "variant": "canary", "count": 2, "interval": 10,
                              "condition": {"op": "ge", "value": 1}}, {}, "scrape", {"canary", "stable"})
    runs = [ma.MetricRun(errors), ma.MetricRun(rate)]
    assert rounds.measure(runs) == [None, None]  # the baseline
    second = rounds.measure(runs)
    assert [m.outcome for m in second] == ["error", "error"] and "429" in second[0].reason
    third = rounds.measure(runs)
    assert third[0].value == pytest.approx(10 / 110.0) and third[0].detail["window_s"] == 20.0  # from the baseline
    assert third[1].value == 110.0
    assert scraper.calls == ["canary"] * 3  # one scrape per tick for both metrics; stable was never needed


# ------------------------------------------------------------------------------------------ monitoring

class FakeAPI:
    base_url = "http://127.0.0.1:9090"

    def __init__(self, targets=None, rules=None, error=None):
        self._targets, self._rules, self._error = targets or [], rules or [], error

    def targets(self, deadline):
        if self._error:
            raise self._error
        return self._targets

    def rules(self, deadline):
        return self._rules


def test_monitoring_configured_needs_every_target_up_and_every_rule_loaded():
    required = {"targets": ["clean-api", "api-canary"], "rules": ["CanaryHighErrorRate", "sli:canary_error_rate5m"]}
    targets = [{"job": "clean-api", "instance": "127.0.0.1:8001", "health": "up", "last_error": "", "scrape_url": ""},
               {"job": "api-canary", "instance": "127.0.0.1:8002", "health": "down",
                "last_error": "server returned HTTP status 401 Unauthorized", "scrape_url": ""}]
    rules = [{"name": "CanaryHighErrorRate", "type": "alerting", "health": "ok", "group": "g", "last_error": ""}]
    record = ma.monitoring_record(FakeAPI(targets, rules), required, None)
    assert record["status"] == "fail" and record["criterion"] == "monitoring.configured"
    assert record["summary"] == ("monitoring.configured: job api-canary: 1 of 1 targets not up (127.0.0.1:8002 down: "
                                 "server returned HTTP status 401 Unauthorized); rule sli:canary_error_rate5m is not loaded")
    targets[1]["health"] = "up"
    rules.append({"name": "sli:canary_error_rate5m", "type": "recording", "health": "ok", "group": "g", "last_error": ""})
    record = ma.monitoring_record(FakeAPI(targets, rules), required, None)
    assert record["status"] == "pass"
    assert record["summary"] == ("monitoring.configured: Prometheus scrapes clean-api (1 up), api-canary (1 up); "
                                 "rules loaded: CanaryHighErrorRate, sli:canary_error_rate5m")
    record = ma.monitoring_record(FakeAPI(error=SourceError("transport", "Prometheus at x did not answer: refused")),
                                  required, None)
    assert record["status"] == "error" and "did not answer" in record["summary"]
    assert ma.monitoring_record(FakeAPI([], rules), {"targets": ["clean-api"], "rules": []}, None)["summary"] == (
        "monitoring.configured: job clean-api has no active target (Prometheus does not scrape it)")


def test_numbers_for_people():
    assert ma.fmt(0.051, "ratio") == "5.1 %" and ma.fmt(0.3, "seconds") == "300 ms" and ma.fmt(1234.0, "plain") == "1234"
    assert ma.fmt(0.99, "ratio") == "99 %" and ma.fmt(0.9995, "ratio") == "99.95 %" and ma.fmt(0.00004, "ratio") == "0.004 %"
    assert math.isnan(float("nan")) and ma.json_number(float("nan")) == "NaN" and ma.json_number(0.1234567891234) == 0.123456789

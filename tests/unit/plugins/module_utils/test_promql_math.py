"""The PromQL arithmetic of the direct /metrics scrape (counter increase with resets, histogram_quantile from
bucket counts, division), checked against Prometheus's own PromQL engine: ``promtool test rules`` evaluates the
same expressions on the same series and its answers are the expected values."""
from __future__ import annotations

import math
import re
import shutil
import subprocess

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import promql_math as pm

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) is not installed")

# The real service's latency buckets (prometheus_client histogram, seconds).
REAL_BOUNDS = ("0.05", "0.1", "0.25", "0.5", "1", "2", "5", "10", "+Inf")

# name -> (q, [(le, cumulative count), ...]) ; each becomes one histogram in one promtool run.
QUANTILE_CASES = {
    "in_inf_bucket": (0.95, [("0.05", 3), ("0.1", 9), ("+Inf", 12)]),
    "middle_bucket": (0.5, [("0.05", 2), ("0.1", 4), ("0.25", 10), ("+Inf", 10)]),
    "lowest_positive": (0.2, [("0.05", 4), ("0.1", 6), ("+Inf", 10)]),
    "lowest_zero_bound": (0.1, [("0", 3), ("1", 6), ("+Inf", 10)]),
    "lowest_negative_bound": (0.1, [("-1", 3), ("1", 6), ("+Inf", 10)]),
    "no_observations": (0.95, [("0.05", 0), ("0.1", 0), ("+Inf", 0)]),
    "no_inf_bucket": (0.5, [("0.05", 3), ("0.1", 9)]),
    "only_inf_bucket": (0.5, [("+Inf", 9)]),
    "non_monotonic": (0.5, [("0.05", 6), ("0.1", 4), ("0.25", 8), ("+Inf", 10)]),
    "rank_on_boundary": (0.5, [("0.05", 5), ("0.1", 5), ("0.25", 10), ("+Inf", 10)]),
    "duplicate_bounds": (0.5, [("1", 3), ("1.0", 3), ("+Inf", 10)]),
    "q_one": (1.0, [("0.05", 5), ("0.1", 7), ("+Inf", 7)]),
    "q_zero": (0.0, [("0.05", 0), ("0.1", 7), ("+Inf", 7)]),
    "q_above_one": (1.5, [("0.05", 5), ("+Inf", 7)]),
    "q_below_zero": (-0.5, [("0.05", 5), ("+Inf", 7)]),
    "real_p95": (0.95, list(zip(REAL_BOUNDS, (120, 180, 196, 198, 199, 200, 200, 200, 200)))),
    "real_p95_slow": (0.95, list(zip(REAL_BOUNDS, (10, 20, 60, 150, 190, 199, 200, 200, 200)))),
    "real_p99_tail": (0.99, list(zip(REAL_BOUNDS, (10, 20, 60, 150, 190, 195, 196, 197, 200)))),
}

# name -> values of one counter at 0m, 1m, 2m ... ; increase over the whole span (no extrapolation: samples at
# both ends of the range).
COUNTER_CASES = {
    "steady": [10, 25, 40],
    "reset_once": [10, 25, 4],
    "reset_to_zero": [10, 0, 7],
    "two_resets": [50, 3, 1, 9],
    "flat": [7, 7, 7],
}


def _quantile_expr(name, q):
    return "histogram_quantile(%s, %s_bucket)" % (repr(float(q)), name)


def promtool_values(series, exprs, tmp_path, eval_time="0m"):
    """Evaluate ``exprs`` with Prometheus's engine on ``series`` ({series: 'values'}); {expr: float or None}."""
    lines = ["rule_files: []", "evaluation_interval: 1m", "tests:", "  - interval: 1m", "    input_series:"]
    for selector, values in series.items():
        lines += ["      - series: '%s'" % selector, "        values: '%s'" % values]
    lines.append("    promql_expr_test:")
    for expr in exprs:
        # A value nobody computes: promtool then prints what it really got for every expression.
        lines += ["      - expr: '%s'" % expr, "        eval_time: %s" % eval_time, "        exp_samples:",
                  "          - labels: '{}'", "            value: -123456.789"]
    path = tmp_path / "oracle.yml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.run([PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, check=False)
    output = proc.stdout + proc.stderr
    got = {}
    for match in re.finditer(r'expr: "(?P<expr>.*?)", time: .*?\n\s*exp: .*?\n\s*got: (?P<got>.*?)\n', output):
        text = match.group("got").strip()
        if text in ("[]", "{}", "nil"):
            got[match.group("expr")] = None
        else:
            got[match.group("expr")] = float(text.rsplit(" ", 1)[1].replace("+Inf", "inf").replace("-Inf", "-inf"))
    missing = [expr for expr in exprs if expr not in got]
    assert not missing, "promtool did not answer %s:\n%s" % (missing, output)
    return got


def same(actual, expected):
    if expected is None:
        return actual is None or math.isnan(actual)
    if math.isnan(expected):
        return math.isnan(actual)
    if math.isinf(expected):
        return actual == expected
    return actual == pytest.approx(expected, rel=1e-12, abs=1e-15)


@needs_promtool
def test_histogram_quantile_matches_promql(tmp_path):
    series = {}
    exprs = {}
    for name, (q, buckets) in QUANTILE_CASES.items():
        for le, count in buckets:
            series['%s_bucket{le="%s"}' % (name, le)] = str(count)
        exprs[name] = _quantile_expr(name, q)
    oracle = promtool_values(series, list(exprs.values()), tmp_path)
    for name, (q, buckets) in QUANTILE_CASES.items():
        ours = pm.histogram_quantile(q, buckets)
        assert same(ours, oracle[exprs[name]]), "%s: ours %r, PromQL %r" % (name, ours, oracle[exprs[name]])


@needs_promtool
def test_counter_increase_with_resets_matches_promql(tmp_path):
    series = dict(("%s_total" % name, " ".join(str(v) for v in values)) for name, values in COUNTER_CASES.items())
    span = max(len(values) for values in COUNTER_CASES.values()) - 1
    exprs = {}
    for name, values in COUNTER_CASES.items():
        # Every case evaluated at its own last sample over its own span: no extrapolation.
        exprs[name] = "increase(%s_total[%dm])" % (name, len(values) - 1)
    oracle = {}
    for length in sorted(set(len(v) for v in COUNTER_CASES.values())):
        names = [n for n, v in COUNTER_CASES.items() if len(v) == length]
        oracle.update(promtool_values(dict((k, v) for k, v in series.items() if k[:-6] in names),
                                      [exprs[n] for n in names], tmp_path, eval_time="%dm" % (length - 1)))
    assert span >= 2
    for name, values in COUNTER_CASES.items():
        ours = 0.0
        for previous, current in zip(values, values[1:]):
            ours += pm.counter_increase(previous, current)
        assert same(ours, oracle[exprs[name]] or 0.0), "%s: ours %r, PromQL %r" % (name, ours, oracle[exprs[name]])


@needs_promtool
def test_quantile_of_bucket_increases_matches_promql_across_a_reset(tmp_path):
    """Two scrapes of the real histogram with a restart in between: the p95 of the window, ours from the bucket
    deltas, PromQL's from histogram_quantile(0.95, increase(..._bucket[1m]))."""
    before = dict(zip(REAL_BOUNDS, (500, 600, 640, 650, 655, 660, 660, 660, 660)))
    after = dict(zip(REAL_BOUNDS, (20, 30, 60, 90, 95, 100, 100, 100, 100)))  # restarted: every count dropped
    series = {}
    key_before = {}
    key_after = {}
    for le in REAL_BOUNDS:
        series['lat_bucket{route="/v1/estimate",le="%s"}' % le] = "%d %d" % (before[le], after[le])
        key = ("lat_bucket", (("le", le), ("route", "/v1/estimate")))
        key_before[key] = float(before[le])
        key_after[key] = float(after[le])
    expr = "histogram_quantile(0.95, sum by (le) (increase(lat_bucket[1m])))"
    oracle = promtool_values(series, [expr], tmp_path, eval_time="1m")
    ours = pm.histogram_quantile(0.95, pm.bucket_increase(key_before, key_after))
    assert same(ours, oracle[expr])


def test_counter_increase_rules():
    assert pm.counter_increase(10, 25) == 15
    assert pm.counter_increase(25, 4) == 4          # reset: the new value is the increase since the reset
    assert pm.counter_increase(None, 3) == 3        # a series that appeared: counted from 0
    assert math.isnan(pm.counter_increase(float("nan"), 3))
    assert pm.series_increase({"a": 1.0, "gone": 5.0}, {"a": 4.0, "new": 2.0}) == {"a": 3.0, "new": 2.0}


def test_divide_follows_promql():
    assert math.isnan(pm.divide(0, 0))
    assert pm.divide(3, 0) == float("inf")
    assert pm.divide(-3, 0) == float("-inf")
    assert pm.divide(1, 4) == 0.25


def test_histogram_quantile_edge_rules_without_promtool():
    assert math.isnan(pm.histogram_quantile(0.95, []))
    assert math.isnan(pm.histogram_quantile(float("nan"), [("+Inf", 3), ("1", 2)]))
    assert pm.histogram_quantile(0.95, [("+Inf", 12), ("0.1", 9), ("0.05", 3)]) == 0.1   # any order
    # buckets of one bound (le "1" and "1.0") are merged: 6 observations up to 1, the median at 5/6
    assert pm.histogram_quantile(0.5, [("1", 3), ("1.0", 3), ("+Inf", 10)]) == pytest.approx(5 / 6.0)
    # the lowest bucket interpolates from 0
    assert pm.histogram_quantile(0.25, [("0.1", 4), ("+Inf", 4)]) == pytest.approx(0.025)
    assert pm.bucket_increase({}, {("b", (("le", "+Inf"),)): 2.0, ("b", (("x", "1"),)): 9.0}) == [(float("inf"), 2.0)]
    assert pm.is_finite(1.0) and not pm.is_finite(float("inf")) and not pm.is_finite(None) and not pm.is_finite(True)

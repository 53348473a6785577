"""Benchmark (not a test): how the canary's statistical judge (plugins/module_utils/sequential.py) decides on
simulated canaries, against the old judge (a p95 from histogram_quantile per 60 s window, canary p95 vs stable p95
with max_increase_ratio 0.5, failure limit 0) on the same simulated traffic. Offline and seeded: no services.

The canary defaults: stages 10/25/50/100 % of the traffic, 300 s each, one look every 30 s (the tenth is a
stage's last), a service receiving 10 requests a second (then 1 a second), the stable deployment taking
the rest (Caddy's round robin: exactly one request in ten at 10 %). The real service's latency buckets are
0.05 0.1 0.25 0.5 1 2 5 10 s.

Healthy requests, the same for stable and canary: latencies from two log-normal parts (fast: median 15 ms; slow:
median 100 ms, about 4 % of requests), so about 3.5 % are above 50 ms, 2 % above 100 ms and 0.6 % above 250 ms;
the slow part's weight varies per canary run (x e^N(0, 0.2)) and per 30 s (x e^N(0, 0.3), load bursts that hit
stable and canary alike). 0.1 % of requests answer 5xx and 0.1 % 4xx (0.2 % not 2xx/3xx). Traffic per 30 s is
Poisson. Faulty canaries, from the canary's start: 2 % 5xx (stable 0 %), +400 ms on every request, +100 ms on 20 %
of the requests.

The new judge, per look, on the stage's counts since the stage started (each metric a share of bad requests):
5xx <= 1 %; not 2xx/3xx <= 1 %; slower than 0.25 s <= 5 %; against stable (not at 100 %, where stable gets no
traffic): 5xx at most +1 point, slower than 0.1 s at most +10 points. alpha = 0.01 / (stages x 5 metrics) per
metric and stage (the whole canary's false rollback rate, Bonferroni), beta = 0.1 per stage. A fail at any look
rolls back. Stages below --pass-from-weight (the role's canary_pass_from_weight, default 50) are exposure steps:
their last look is not final (slo_analysis's final_look: false), an undecided stage holds and the canary goes on to
the next weight. From that weight on every stage's last look is final: a metric still undecided there is
inconclusive, the canary is not promoted. Each run is judged with --pass-from-weight and with 0 (every stage final),
on the same traffic.

The old judge, per look, on the last 60 s of the stage (30 s at its first look): error rate <= 1 %, p95 <= 0.3 s,
availability >= 99 %, error rate at most stable + 1 point, p95 at most stable p95 x 1.5; one failed measurement
fails the stage (failure limit 0), a window without canary requests or without stable requests is inconclusive
(inconclusive limit 0), min requests 1.

    .venv/bin/python bench/bench_canary_judgement.py [--runs 1000] [--faulty-runs 500] [--seed 1] [--rates 10,1]
        [--pass-from-weight 50] [--json FILE]

For healthy canaries it prints the false rollback rate (a confident fail) and the not-promoted rate (inconclusive),
each with its 95 % Clopper-Pearson interval; for faulty ones the share stopped before 100 % (rolled back or not
promoted; the goal is at least 99 %) with its interval, and the canary requests and seconds from the canary's start
to that decision (median / 95th percentile).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".build" / "collections"))

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import promql_math as pm  # noqa: E402  pylint: disable=wrong-import-position
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import sequential as sq  # noqa: E402  pylint: disable=wrong-import-position

BOUNDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, math.inf)  # the real service's histogram, +Inf added
FAST_MEDIAN, FAST_SIGMA = 0.015, 0.45
SLOW_MEDIAN, SLOW_SIGMA, SLOW_WEIGHT = 0.100, 0.9, 0.04
RUN_NOISE_SIGMA, LOOK_NOISE_SIGMA = 0.2, 0.3
HEALTHY_5XX, HEALTHY_4XX = 0.001, 0.001

SCENARIOS = {
    "healthy": {},
    "5xx 2 % vs 0 %": {"canary_5xx": 0.02, "stable_5xx": 0.0},
    "5xx 20 %": {"canary_5xx": 0.2},
    "+400 ms on every request": {"shift": 0.4, "shifted": 1.0},
    "+100 ms on 20 % of requests": {"shift": 0.1, "shifted": 0.2},
}


# ------------------------------------------------------------------------------------------- random counts

def binomial(rng, trials, share):
    """A Binomial(trials, share) draw: the gaps between successes are geometric, so the cost is the number of
    successes (of the rarer outcome), not the number of trials."""
    if trials <= 0 or share <= 0.0:
        return 0
    if share >= 1.0:
        return trials
    if share > 0.5:
        return trials - binomial(rng, trials, 1.0 - share)
    log_miss = math.log1p(-share)
    successes, position = 0, 0
    while True:
        position += int(math.log(1.0 - rng.random()) / log_miss) + 1
        if position > trials:
            return successes
        successes += 1


def poisson(rng, mean):
    if mean > 100:
        return max(0, int(round(rng.gauss(mean, math.sqrt(mean)))))
    limit, product, count = math.exp(-mean), rng.random(), 0
    while product > limit:
        product *= rng.random()
        count += 1
    return count


def multinomial(rng, trials, shares):
    """Counts per cell; the rare cells drawn first, the commonest one takes the rest."""
    counts = [0] * len(shares)
    order = sorted(range(len(shares)), key=lambda index: shares[index])
    left, mass = trials, 1.0
    for index in order[:-1]:
        if left == 0 or mass <= 0:
            break
        drawn = binomial(rng, left, min(1.0, shares[index] / mass))
        counts[index] = drawn
        left -= drawn
        mass -= shares[index]
    counts[order[-1]] += left
    return counts


# ------------------------------------------------------------------------------------------ the service model

def lognormal_cdf(value, median, sigma):
    if value <= 0:
        return 0.0
    if math.isinf(value):
        return 1.0
    return 0.5 * (1.0 + math.erf(math.log(value / median) / (sigma * math.sqrt(2.0))))


def part_cells(median, sigma, shift=0.0, shifted=0.0):
    """The share of one log-normal part's requests in each bucket (cells between consecutive bounds), ``shifted``
    of them ``shift`` s slower."""
    cumulative = [(1.0 - shifted) * lognormal_cdf(bound, median, sigma)
                  + shifted * lognormal_cdf(bound - shift, median, sigma) for bound in BOUNDS]
    return [high - low for low, high in zip([0.0] + cumulative[:-1], cumulative)]


class LatencyModel:
    """Bucket shares of a mixture of the fast and the slow part; the slow part's weight varies with the load."""

    def __init__(self, shift=0.0, shifted=0.0):
        self.fast = part_cells(FAST_MEDIAN, FAST_SIGMA, shift, shifted)
        self.slow = part_cells(SLOW_MEDIAN, SLOW_SIGMA, shift, shifted)

    def shares(self, slow_weight):
        return [(1.0 - slow_weight) * fast + slow_weight * slow for fast, slow in zip(self.fast, self.slow)]


class Window:
    """One variant's counts over some time: requests, 5xx, 4xx and requests per latency bucket."""
    __slots__ = ("total", "errors_5xx", "errors_4xx", "cells")

    def __init__(self, total=0, errors_5xx=0, errors_4xx=0, cells=None):
        self.total, self.errors_5xx, self.errors_4xx = total, errors_5xx, errors_4xx
        self.cells = cells or [0] * len(BOUNDS)

    def add(self, other):
        self.total += other.total
        self.errors_5xx += other.errors_5xx
        self.errors_4xx += other.errors_4xx
        self.cells = [mine + theirs for mine, theirs in zip(self.cells, other.cells)]
        return self

    def slower_than(self, bound):
        return sum(self.cells[BOUNDS.index(bound) + 1:])

    def p95(self):
        counts, cumulative = [], 0
        for bound, count in zip(BOUNDS, self.cells):
            cumulative += count
            counts.append((bound, cumulative))
        return pm.histogram_quantile(0.95, counts)


def draw_window(rng, requests, shares, share_5xx, share_4xx):
    errors_5xx = binomial(rng, requests, share_5xx)
    errors_4xx = binomial(rng, requests - errors_5xx, share_4xx / (1.0 - share_5xx))
    return Window(requests, errors_5xx, errors_4xx, multinomial(rng, requests, shares))


def draw_canary(rng, scenario, rate, stages, looks, look_seconds):
    """[stage][look] -> (canary Window, stable Window) for one canary run."""
    run_factor = math.exp(rng.gauss(0.0, RUN_NOISE_SIGMA))
    canary_5xx = scenario.get("canary_5xx", HEALTHY_5XX)
    stable_5xx = scenario.get("stable_5xx", HEALTHY_5XX)
    canary_latency = LatencyModel(scenario.get("shift", 0.0), scenario.get("shifted", 0.0))
    stable_latency = LatencyModel()
    run, served = [], 0
    for weight in stages:
        blocks = []
        for _look in range(looks):
            slow_weight = min(0.5, SLOW_WEIGHT * run_factor * math.exp(rng.gauss(0.0, LOOK_NOISE_SIGMA)))
            requests = poisson(rng, rate * look_seconds)
            # Round robin over upstream entries: exactly weight/100 of the requests, in order.
            canary = (served + requests) * weight // 100 - served * weight // 100
            served += requests
            blocks.append((draw_window(rng, canary, canary_latency.shares(slow_weight), canary_5xx, HEALTHY_4XX),
                           draw_window(rng, requests - canary, stable_latency.shares(slow_weight), stable_5xx,
                                       HEALTHY_4XX)))
        run.append(blocks)
    return run


# ------------------------------------------------------------------------------------------------ the judges

class Outcome:
    def __init__(self, result, stage, look, requests, seconds, by):
        self.result, self.stage, self.look = result, stage, look  # result: rollback | inconclusive | promoted
        self.requests, self.seconds, self.by = requests, seconds, by


@functools.lru_cache(maxsize=1 << 18)
def _judge_share(bad, total, limit, alpha, beta, final):
    """sq.judge_share, remembered: the same counts come back often over thousands of runs (the dict is not changed)."""
    return sq.judge_share(bad, total, limit, alpha, beta, final)


@functools.lru_cache(maxsize=1 << 18)
def _judge_vs_baseline(bad, total, base_bad, base_total, points, alpha, beta, final):
    """sq.judge_vs_baseline with a margin of ``points``, remembered like _judge_share."""
    return sq.judge_vs_baseline(bad, total, base_bad, base_total, sq.Margin(points=points), alpha, beta, final)


def look_verdicts(canary, stable, weight, options, final):
    """The sequential judge's verdicts of one look on the stage's counts so far, by metric. A confident fail does
    not depend on ``final``; ``final`` only adds the pass / inconclusive answer of a stage's last look."""
    alpha, beta = options.alpha, options.false_pass
    verdicts = {
        "5xx": _judge_share(canary.errors_5xx, canary.total, options.error_limit, alpha, beta, final),
        "not 2xx/3xx": _judge_share(canary.errors_5xx + canary.errors_4xx, canary.total, options.non_2xx_limit,
                                    alpha, beta, final),
        "slower than %g s" % options.slow_bound: _judge_share(
            canary.slower_than(options.slow_bound), canary.total, options.slow_limit, alpha, beta, final),
    }
    if weight < 100:
        verdicts["5xx vs stable"] = _judge_vs_baseline(
            canary.errors_5xx, canary.total, stable.errors_5xx, stable.total, options.vs_error_points, alpha, beta,
            final)
        verdicts["slower than %g s vs stable" % options.vs_slow_bound] = _judge_vs_baseline(
            canary.slower_than(options.vs_slow_bound), canary.total, stable.slower_than(options.vs_slow_bound),
            stable.total, options.vs_slow_points, alpha, beta, final)
    return verdicts


def new_judge(run, options, pass_from_weights):
    """The sequential judge on one canary run, for each ``pass_from_weight`` at once: {pass_from_weight: Outcome}.

    A stage whose weight is below pass_from_weight is an exposure step: its last look is not final (slo_analysis's
    ``final_look: false``), so an undecided stage holds and the canary goes on to the next weight. From that weight
    on every stage's last look is final: undecided there is inconclusive, the canary is not promoted. A confident
    fail rolls back at any look of any stage. The looks are the same for every variant until one of them stops, so
    each look is judged once and read by every variant still running (a confident fail does not depend on whether
    the look is final)."""
    stages, looks = options.stages, options.looks
    outcomes, running = {}, list(pass_from_weights)
    requests = 0
    for stage_index, weight in enumerate(stages):
        canary, stable = Window(), Window()
        for look, (canary_block, stable_block) in enumerate(run[stage_index]):
            canary.add(canary_block)
            stable.add(stable_block)
            requests += canary_block.total
            last = look == looks - 1
            # Final only for a variant that must pass here; the others judge it as slo_analysis's final_look: false.
            final = last and any(weight >= pass_from_weight for pass_from_weight in running)
            verdicts = look_verdicts(canary, stable, weight, options, final)
            seconds = stage_index * options.stage_seconds + (look + 1) * options.look_seconds
            failed = [name for name, verdict in verdicts.items() if verdict["decision"] == "fail"]
            if failed:
                for pass_from_weight in running:
                    outcomes[pass_from_weight] = Outcome("rollback", weight, look + 1, requests, seconds, failed[0])
                return outcomes
            undecided = [name for name, verdict in verdicts.items() if verdict["decision"] == "inconclusive"]
            if final and undecided:
                for pass_from_weight in [value for value in running if weight >= value]:
                    outcomes[pass_from_weight] = Outcome("inconclusive", weight, look + 1, requests, seconds,
                                                         undecided[0])
                    running.remove(pass_from_weight)
                if not running:
                    return outcomes
    for pass_from_weight in running:
        outcomes[pass_from_weight] = Outcome("promoted", None, None, requests, len(stages) * options.stage_seconds,
                                             None)
    return outcomes


def old_measurements(canary, stable, weight, options):
    """The old judge's measurements of one window: [(metric, outcome)] with outcome failed | inconclusive | ok."""
    if canary.total < 1:
        return [("traffic", "inconclusive")]
    error_rate = canary.errors_5xx / canary.total
    p95 = canary.p95()
    found = [("error_rate", "failed" if error_rate > options.error_limit else "ok"),
             ("latency_p95", "failed" if p95 > options.old_p95_max else "ok"),
             ("availability", "failed" if 1.0 - (canary.errors_5xx + canary.errors_4xx) / canary.total < 0.99
              else "ok")]
    if weight < 100:
        if stable.total < 1:
            return found + [("vs_stable", "inconclusive")]
        stable_rate, stable_p95 = stable.errors_5xx / stable.total, stable.p95()
        found.append(("vs_stable_error_rate", "failed" if error_rate - stable_rate > options.vs_error_points else "ok"))
        degradation = p95 - stable_p95
        found.append(("vs_stable_latency_p95", "failed" if degradation > 0 and
                      degradation > abs(stable_p95) * options.old_ratio else "ok"))
    return found


def old_judge(run, options):
    stages, window_looks = options.stages, max(1, int(round(options.old_window / options.look_seconds)))
    requests = 0
    for stage_index, weight in enumerate(stages):
        blocks = run[stage_index]
        for look in range(len(blocks)):
            requests += blocks[look][0].total
            canary, stable = Window(), Window()
            for canary_block, stable_block in blocks[max(0, look + 1 - window_looks):look + 1]:
                canary.add(canary_block)
                stable.add(stable_block)
            seconds = stage_index * options.stage_seconds + (look + 1) * options.look_seconds
            found = old_measurements(canary, stable, weight, options)
            for wanted, result in (("failed", "rollback"), ("inconclusive", "inconclusive")):
                names = [name for name, outcome in found if outcome == wanted]
                if names:
                    return Outcome(result, weight, look + 1, requests, seconds, names[0])
    return Outcome("promoted", None, None, requests, len(stages) * options.stage_seconds, None)


# ---------------------------------------------------------------------------------------------------- report

def interval(count, runs):
    """The 95 % Clopper-Pearson interval of a rate."""
    return sq.final_lower_bound(count, runs, 0.025), sq.final_upper_bound(count, runs, 0.025)


def percentile(values, share):
    ordered = sorted(values)
    return ordered[max(0, int(math.ceil(share * len(ordered))) - 1)] if ordered else None


def _spread(values):
    """Median and 95th percentile of decision figures (None, None without any)."""
    return (statistics.median(values), percentile(values, 0.95)) if values else (None, None)


def summarise(outcomes, stages):
    """The figures of one judge on one scenario. Rolled back: a confident fail at some look. Not promoted: a final
    look left a metric undecided (inconclusive). Stopped before the last stage: either, before full traffic."""
    runs = len(outcomes)
    rolled = [outcome for outcome in outcomes if outcome.result == "rollback"]
    undecided = [outcome for outcome in outcomes if outcome.result == "inconclusive"]
    stopped = [outcome for outcome in outcomes if outcome.result != "promoted" and outcome.stage != stages[-1]]
    figures = {"runs": runs}
    for key, chosen in (("rollback", rolled), ("inconclusive", undecided), ("stopped_before_last_stage", stopped)):
        figures[key] = len(chosen) / runs
        figures[key + "_ci95"] = list(interval(len(chosen), runs))
    figures["rollback_before_last_stage"] = sum(1 for o in rolled if o.stage != stages[-1]) / runs
    figures["promoted"] = sum(1 for outcome in outcomes if outcome.result == "promoted") / runs
    for key, chosen in (("rollback", rolled), ("stopped", stopped)):
        figures[key + "_requests_median"], figures[key + "_requests_p95"] = _spread([o.requests for o in chosen])
        figures[key + "_seconds_median"], figures[key + "_seconds_p95"] = _spread([o.seconds for o in chosen])
    figures["rollback_by"] = Counter("%s %% %s" % (o.stage, o.by) for o in rolled).most_common(4)
    figures["inconclusive_by"] = Counter("%s %% %s" % (o.stage, o.by) for o in undecided).most_common(4)
    return figures


def healthy_pass_requests(bad_share, limit, beta, goal):
    """The fewest requests at which a share of ``bad_share`` passes ``limit`` at its last look with probability
    ``goal`` or more (a pass: at most k bad, k the largest count whose final upper bound is within the limit)."""
    requests, most_bad = sq.requests_to_pass(limit, beta), 0
    while True:
        while sq.final_upper_bound(most_bad + 1, requests, beta) <= limit:
            most_bad += 1
        # P(X <= most_bad) for X ~ Binomial(requests, bad_share) = 1 - I_share(most_bad + 1, requests - most_bad)
        if sq.final_upper_bound(most_bad, requests, beta) <= limit and \
                1.0 - sq.regularized_incomplete_beta(most_bad + 1, requests - most_bad, bad_share) >= goal:
            return requests
        requests += 10


def pct(value):
    return "%.2f %%" % (value * 100.0)


def _rate(figures, key):
    low, high = figures[key + "_ci95"]
    return "%s [95 %% CI %s-%s]" % (pct(figures[key]), pct(low), pct(high))


def show(name, judge, figures, healthy):
    """One judge's figures on one scenario: for healthy canaries the false rollback rate and the not-promoted rate;
    for faulty ones the share stopped before 100 % (the goal: at least 99 %) and when."""
    if healthy:
        print("  %-28s %-19s rolled back %s, not promoted (inconclusive) %s, promoted %s"
              % (name, judge, _rate(figures, "rollback"), _rate(figures, "inconclusive"), pct(figures["promoted"])))
    else:
        goal = "met" if figures["stopped_before_last_stage"] >= 0.99 else "MISSED"
        print("  %-28s %-19s stopped before 100 %% %s (goal >= 99 %%: %s): rolled back %s, not promoted %s"
              % (name, judge, _rate(figures, "stopped_before_last_stage"), goal, pct(figures["rollback"]),
                 pct(figures["inconclusive"])))
        if figures["stopped_requests_median"] is not None:
            print("  %-48s decision after canary requests median %s / p95 %s, seconds median %s / p95 %s"
                  % ("", _num(figures["stopped_requests_median"]), _num(figures["stopped_requests_p95"]),
                     _num(figures["stopped_seconds_median"]), _num(figures["stopped_seconds_p95"])))
    # The rolled-back runs apart when some others were not promoted (their decisions differ), and always for healthy.
    if figures["rollback_requests_median"] is not None and (healthy or figures["inconclusive"]):
        print("  %-48s rolled back after canary requests median %s / p95 %s, seconds median %s / p95 %s"
              % ("", _num(figures["rollback_requests_median"]), _num(figures["rollback_requests_p95"]),
                 _num(figures["rollback_seconds_median"]), _num(figures["rollback_seconds_p95"])))
    for key, word in (("rollback_by", "rolled back by"), ("inconclusive_by", "inconclusive on")):
        if figures[key]:
            print("  %-48s %s: %s" % ("", word, ", ".join("%s (%d)" % item for item in figures[key])))


def _num(value):
    return "%g" % value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="healthy canaries per traffic rate")
    parser.add_argument("--faulty-runs", type=int, default=500, help="canaries per fault and traffic rate")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rates", default="10,1", help="requests a second the service receives (comma-separated)")
    parser.add_argument("--stages", default="10,25,50,100", help="canary weights in percent")
    parser.add_argument("--stage-seconds", type=int, default=300)
    parser.add_argument("--look-seconds", type=int, default=30)
    parser.add_argument("--false-rollback", type=float, default=0.01,
                        help="the whole canary's false rollback rate (split over stages x 5 metrics)")
    parser.add_argument("--false-pass", type=float, default=0.1, help="beta: false pass rate per stage")
    parser.add_argument("--error-limit", type=float, default=0.01, help="5xx share")
    parser.add_argument("--non-2xx-limit", type=float, default=0.01, help="share not 2xx/3xx")
    parser.add_argument("--slow-bound", type=float, default=0.25, help="bucket bound of the slow share (s)")
    parser.add_argument("--slow-limit", type=float, default=0.05, help="share slower than --slow-bound")
    parser.add_argument("--vs-error-points", type=float, default=0.01, help="5xx share above stable's allowed")
    parser.add_argument("--vs-slow-bound", type=float, default=0.1, help="bucket bound of the compared slow share")
    parser.add_argument("--vs-slow-points", type=float, default=0.10, help="slow share above stable's allowed")
    parser.add_argument("--old-p95-max", type=float, default=0.3)
    parser.add_argument("--old-ratio", type=float, default=0.5, help="old judge: canary p95 over stable p95")
    parser.add_argument("--old-window", type=float, default=60.0, help="old judge: seconds per measurement")
    parser.add_argument("--pass-from-weight", type=int, default=50,
                        help="stages from this weight on must pass at their last look; below it they are exposure "
                             "steps (undecided holds); the run also judges with 0, every stage final")
    parser.add_argument("--json", help="write the figures to this file")
    options = parser.parse_args()
    options.stages = [int(weight) for weight in options.stages.split(",")]
    options.looks = options.stage_seconds // options.look_seconds
    if not 0 <= options.pass_from_weight <= options.stages[-1]:
        # Above the last stage no look would be final: a canary would be promoted without ever passing.
        parser.error("--pass-from-weight must be between 0 and the last stage's weight (%d), got %d"
                     % (options.stages[-1], options.pass_from_weight))
    for bound in (options.slow_bound, options.vs_slow_bound):
        if bound not in BOUNDS:
            parser.error("a slow share's bound must be a bucket bound (%s), got %g"
                         % (" ".join("%g" % b for b in BOUNDS[:-1]), bound))
    alpha = options.alpha = options.false_rollback / (len(options.stages) * 5)
    print("alpha per metric and stage %.2g, beta %.2g; a pass needs at least %d clean canary requests for %s"
          % (alpha, options.false_pass, sq.requests_to_pass(options.error_limit, options.false_pass),
             pct(options.error_limit)))
    goal = 0.99
    needs = [("5xx", HEALTHY_5XX, options.error_limit),
             ("not 2xx/3xx", HEALTHY_5XX + HEALTHY_4XX, options.non_2xx_limit)]
    figures = {"stage_needs": {}}
    for name, share, limit in needs:
        requests = healthy_pass_requests(share, limit, options.false_pass, goal)
        figures["stage_needs"][name] = requests
        print("a healthy canary (%s %s) passes %s <= %s at a stage's last look in %s of stages from %d canary "
              "requests on" % (pct(share), name, name, pct(limit), pct(goal), requests))
    # The chosen pass_from_weight and the strict variant (every stage final), judged on the same runs.
    variants = [options.pass_from_weight] + ([0] if options.pass_from_weight else [])
    judges = {value: "new, pass from %d %%" % value if value else "new, every stage" for value in variants}
    judges["old"] = "old"
    for value in variants:
        promotion = [weight for weight in options.stages if weight >= value]
        print("%s: exposure stages %s (undecided holds), promotion stages %s (each must pass at its last look)"
              % (judges[value], ", ".join("%d %%" % w for w in options.stages if w < value) or "none",
                 ", ".join("%d %%" % weight for weight in promotion)))
    started, met = time.process_time(), {}
    rng = random.Random(options.seed)
    for rate in [float(rate) for rate in options.rates.split(",")]:
        per_stage = ", ".join("%d %%: %d" % (weight, round(rate * options.stage_seconds * weight / 100.0))
                              for weight in options.stages)
        worst = max(figures["stage_needs"].values())
        print("\n%g requests/s (canary requests per stage: %s; %d canary requests take %s)"
              % (rate, per_stage, worst, ", ".join("%d s at %d %%" % (math.ceil(worst / (rate * weight / 100.0)), weight)
                                                   for weight in options.stages)))
        for name, scenario in SCENARIOS.items():
            runs = options.runs if name == "healthy" else options.faulty_runs
            if runs < 1:
                continue
            outcomes = {judge: [] for judge in judges.values()}
            for _run in range(runs):
                run = draw_canary(rng, scenario, rate, options.stages, options.looks, options.look_seconds)
                for pass_from_weight, outcome in new_judge(run, options, variants).items():
                    outcomes[judges[pass_from_weight]].append(outcome)
                outcomes["old"].append(old_judge(run, options))
            for judge in outcomes:
                result = summarise(outcomes[judge], options.stages)
                figures["%g rps / %s / %s" % (rate, name, judge)] = result
                show(name, judge, result, name == "healthy")
            # The goals, for the chosen judge: at most 1 % of healthy canaries rolled back, at least 99 % of
            # faulty ones stopped before 100 %. (Not promoted is a figure: it depends on the traffic, see above.)
            chosen = figures["%g rps / %s / %s" % (rate, name, judges[options.pass_from_weight])]
            if name == "healthy":
                met["%g rps healthy rolled back <= 1 %%" % rate] = chosen["rollback"] <= 0.01
            else:
                met["%g rps %s stopped before 100 %% >= 99 %%" % (rate, name)] = \
                    chosen["stopped_before_last_stage"] >= 0.99
    figures["met"] = met
    print("\nsimulated and judged in %.1f s of CPU" % (time.process_time() - started))
    print("targets (%s): %s" % (judges[options.pass_from_weight],
                                ", ".join("%s: %s" % (key, "met" if value else "MISSED") for key, value in met.items())))
    if options.json:
        Path(options.json).write_text(json.dumps(figures, indent=1, sort_keys=True), encoding="utf-8")
    return 0 if all(met.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

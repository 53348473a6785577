"""The canary judge's statistics: exact values of the incomplete beta function and the Clopper-Pearson bounds,
the anytime-valid mixture bounds (their defining equation, their order and monotonicity), seeded simulations of
many looks (the false fail rate stays within alpha; a gross fault fails within a handful of requests), the number
of clean requests a pass needs, and the clear errors for bad input. Pure arithmetic: no clock, no services."""
from __future__ import annotations

import math
import random

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import sequential as sq

# The canary defaults: 0.01 for the whole canary over 4 stages x 5 metrics, 0.1 per stage for a false pass.
ALPHA = 0.01 / 20
BETA = 0.1


def binomial_tail_at_least(successes, trials, share):
    """P(Binomial(trials, share) >= successes), summed term by term (the reference the tests check against; each
    term in log space, with the exact binomial coefficient, so that 1200 trials do not overflow)."""
    return math.fsum(math.exp(math.log(math.comb(trials, k)) + k * math.log(share) + (trials - k) * math.log1p(-share))
                     for k in range(successes, trials + 1))


def direct_log_mixture_ratio(bad, total, p0, shifts):
    """The mixture likelihood ratio written as the definition reads: mean_k (p_k/p0)^bad ((1-p_k)/(1-p0))^good."""
    logit_p0 = math.log(p0 / (1 - p0))
    terms = []
    for shift in shifts:
        p_k = 1 / (1 + math.exp(-(logit_p0 + shift)))
        terms.append(bad * math.log(p_k / p0) + (total - bad) * math.log((1 - p_k) / (1 - p0)))
    top = max(terms)
    return top + math.log(sum(math.exp(term - top) for term in terms) / len(terms))


# ------------------------------------------------------------------------------------- incomplete beta function

@pytest.mark.parametrize("a, b", [(1, 1), (2, 3), (5, 1), (1, 7), (4, 9), (30, 12), (3, 200)])
@pytest.mark.parametrize("x", [0.001, 0.05, 0.3, 0.5, 0.77, 0.999])
def test_incomplete_beta_matches_the_binomial_tail_for_whole_parameters(a, b, x):
    expected = binomial_tail_at_least(a, a + b - 1, x)
    assert sq.regularized_incomplete_beta(a, b, x) == pytest.approx(expected, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("x", [0.01, 0.2, 0.5, 0.9])
def test_incomplete_beta_known_closed_forms(x):
    assert sq.regularized_incomplete_beta(0.5, 0.5, x) == pytest.approx(2 / math.pi * math.asin(math.sqrt(x)),
                                                                        rel=1e-10)
    assert sq.regularized_incomplete_beta(3.5, 1, x) == pytest.approx(x ** 3.5, rel=1e-10)
    assert sq.regularized_incomplete_beta(1, 2.5, x) == pytest.approx(1 - (1 - x) ** 2.5, rel=1e-10)
    assert sq.regularized_incomplete_beta(7, 2, x) == pytest.approx(1 - sq.regularized_incomplete_beta(2, 7, 1 - x),
                                                                    rel=1e-10)


def test_incomplete_beta_edges_and_large_parameters():
    assert sq.regularized_incomplete_beta(2, 3, 0.0) == 0.0
    assert sq.regularized_incomplete_beta(2, 3, 1.0) == 1.0
    assert sq.regularized_incomplete_beta(40000, 40000, 0.5) == pytest.approx(0.5, abs=1e-9)
    with pytest.raises(ValueError, match="a > 0 and b > 0"):
        sq.regularized_incomplete_beta(0, 3, 0.5)


# -------------------------------------------------------------------------------------- Clopper-Pearson bounds

@pytest.mark.parametrize("total", [1, 10, 230, 1000, 10 ** 6])
def test_final_bounds_closed_forms_at_the_extremes(total):
    assert sq.final_upper_bound(0, total, BETA) == pytest.approx(1 - BETA ** (1 / total), rel=1e-12)
    assert sq.final_lower_bound(total, total, ALPHA) == pytest.approx(ALPHA ** (1 / total), rel=1e-12)
    assert sq.final_lower_bound(0, total, ALPHA) == 0.0
    assert sq.final_upper_bound(total, total, BETA) == 1.0


def test_final_bounds_textbook_interval():
    # The 95 % two-sided Clopper-Pearson interval of 1 in 10 is [0.00253, 0.4450]: two one-sided 97.5 % bounds.
    assert sq.final_lower_bound(1, 10, 0.025) == pytest.approx(0.0025286, rel=1e-4)
    assert sq.final_upper_bound(1, 10, 0.025) == pytest.approx(0.4450161, rel=1e-5)


@pytest.mark.parametrize("bad, total", [(1, 300), (3, 300), (12, 1200), (50, 400), (299, 300)])
def test_final_bounds_meet_their_defining_tail_probabilities(bad, total):
    upper = sq.final_upper_bound(bad, total, BETA)
    lower = sq.final_lower_bound(bad, total, ALPHA)
    # The upper bound: seeing `bad` or fewer has probability beta; the lower: seeing `bad` or more has alpha.
    assert 1 - binomial_tail_at_least(bad + 1, total, upper) == pytest.approx(BETA, rel=1e-6)
    assert binomial_tail_at_least(bad, total, lower) == pytest.approx(ALPHA, rel=1e-6)
    assert lower < bad / total < upper


def test_final_bounds_without_requests():
    assert sq.final_upper_bound(0, 0, BETA) == 1.0
    assert sq.final_lower_bound(0, 0, ALPHA) == 0.0


# ------------------------------------------------------------------------------------ the anytime-valid bounds

@pytest.mark.parametrize("bad, total", [(3, 300), (12, 1200), (30, 1200), (50, 1000), (200, 400), (5, 5)])
def test_lower_bound_is_where_the_mixture_ratio_reaches_one_over_alpha(bad, total):
    lower = sq.lower_bound(bad, total, ALPHA)
    assert 0 < lower < bad / total
    assert direct_log_mixture_ratio(bad, total, lower, sq.SHIFTS_ABOVE) == pytest.approx(-math.log(ALPHA),
                                                                                         abs=1e-6)


def test_lower_bound_is_zero_when_nothing_is_rejected():
    assert sq.lower_bound(0, 1000, ALPHA) == 0.0
    assert sq.lower_bound(0, 0, ALPHA) == 0.0
    # Two bad requests can never reach 1/alpha: the ratio's supremum (p0 -> 0) is mean_k e^(2 s_k).
    assert sq.lower_bound(2, 2, ALPHA) == 0.0
    assert sq.lower_bound(2, 10 ** 6, ALPHA) == 0.0


def test_upper_bound_anytime_mirrors_the_lower_bound():
    assert sq.upper_bound_anytime(3, 300, ALPHA) == pytest.approx(1 - sq.lower_bound(297, 300, ALPHA))
    assert sq.upper_bound_anytime(0, 0, ALPHA) == 1.0
    upper = sq.upper_bound_anytime(12, 1200, ALPHA)
    assert direct_log_mixture_ratio(12, 1200, upper, sq.SHIFTS_BELOW) == pytest.approx(-math.log(ALPHA), abs=1e-6)


@pytest.mark.parametrize("bad, total", [(1, 50), (3, 300), (12, 1200), (30, 1200), (120, 400), (399, 400)])
def test_anytime_bounds_are_wider_than_the_fixed_look_bounds(bad, total):
    # The mixture test at level alpha is also a valid one-look test, and Clopper-Pearson is the tightest of those.
    share = bad / total
    assert sq.lower_bound(bad, total, ALPHA) <= sq.final_lower_bound(bad, total, ALPHA) < share
    assert share < sq.final_upper_bound(bad, total, ALPHA) <= sq.upper_bound_anytime(bad, total, ALPHA)


def test_lower_bound_is_monotone():
    by_bad = [sq.lower_bound(bad, 1000, ALPHA) for bad in range(0, 120, 5)]
    assert by_bad == sorted(by_bad) and by_bad[-1] > by_bad[0]
    by_total = [sq.lower_bound(40, total, ALPHA) for total in range(40, 5000, 200)]
    assert by_total == sorted(by_total, reverse=True)
    by_alpha = [sq.lower_bound(40, 1000, alpha) for alpha in (1e-6, 1e-4, 0.01, 0.1, 0.5)]
    assert by_alpha == sorted(by_alpha)


def test_lower_bound_on_a_million_requests():
    lower = sq.lower_bound(20000, 10 ** 6, ALPHA)
    assert sq.final_lower_bound(20000, 10 ** 6, ALPHA) > lower > 0.0175
    assert sq.upper_bound_anytime(1000, 10 ** 6, ALPHA) < 0.0012


# --------------------------------------------------------------------------------------- seeded simulations

def draw_bad(rng, requests, share):
    return sum(1 for _request in range(requests) if rng.random() < share)


def test_false_fail_rate_over_many_looks_stays_within_alpha():
    """The worst healthy case (share exactly at the limit) looked at 40 times: the anytime judge fails at most
    alpha of the sequences; the same data judged at every look by the one-look test fails far more often."""
    rng = random.Random(20260521)
    alpha, limit, sequences, looks, per_look = 0.05, 0.02, 500, 40, 25
    anytime_fails = repeated_one_look_fails = 0
    for _sequence in range(sequences):
        bad = total = 0
        anytime_failed = one_look_failed = False
        for _look in range(looks):
            bad += draw_bad(rng, per_look, limit)
            total += per_look
            if not anytime_failed and sq.judge_share(bad, total, limit, alpha, BETA, False)["decision"] == "fail":
                anytime_failed = True
            # The one-look test: P(X >= bad; limit) <= alpha, misused at every look.
            if not one_look_failed and bad and sq.regularized_incomplete_beta(bad, total - bad + 1, limit) <= alpha:
                one_look_failed = True
        anytime_fails += anytime_failed
        repeated_one_look_fails += one_look_failed
    # The mixture's true rate is well below alpha (2 of 500 with this seed), so the observed rate has ample room;
    # the repeated one-look test is above alpha even by the 99.9 % lower bound of its rate (66 of 500).
    assert anytime_fails / sequences <= alpha
    assert sq.final_lower_bound(repeated_one_look_fails, sequences, 0.001) > alpha


def test_healthy_stages_below_the_limit_pass_and_never_fail():
    rng = random.Random(7)
    decisions = []
    for _stage in range(200):
        bad = total = 0
        for look in range(10):
            bad += draw_bad(rng, 150, 0.001)
            total += 150
            verdict = sq.judge_share(bad, total, 0.01, ALPHA, BETA, look == 9)
            assert verdict["decision"] != "fail", verdict["reason"]
        decisions.append(verdict["decision"])
    # 1500 requests at 0.1 %: a pass needs at most 6 bad; P(Binomial(1500, 0.001) > 6) is about 0.1 %.
    assert decisions.count("pass") >= 195
    assert set(decisions) <= {"pass", "inconclusive"}


@pytest.mark.parametrize("fault_share, most_requests", [(1.0, 4), (0.2, 150)])
def test_gross_fault_fails_within_a_handful_of_requests(fault_share, most_requests):
    rng = random.Random(3)
    taken = []
    for _run in range(100):
        bad = total = 0
        while True:
            bad += draw_bad(rng, 1, fault_share)
            total += 1
            if sq.judge_share(bad, total, 0.01, ALPHA, BETA, False)["decision"] == "fail":
                break
        taken.append(total)
    assert max(taken) <= most_requests
    if fault_share == 1.0:
        # Every request bad: the third one already fails (deterministic).
        assert taken == [3] * 100


def test_pass_needs_the_documented_number_of_clean_requests():
    assert sq.requests_to_pass(0.01, BETA) == 230
    assert sq.requests_to_pass(0.05, BETA) == 45
    assert sq.requests_to_pass(0.0, BETA) is None
    assert sq.judge_share(0, 230, 0.01, ALPHA, BETA, True)["decision"] == "pass"
    short = sq.judge_share(0, 229, 0.01, ALPHA, BETA, True)
    assert short["decision"] == "inconclusive" and short["needed"] == 230
    assert "a pass needs at least 230 clean requests for 1 %" in short["reason"]
    assert sq.judge_share(0, 10 ** 6, 0.0, ALPHA, BETA, True)["decision"] == "inconclusive"


# ------------------------------------------------------------------------------------------------ the judges

def test_judge_share_decisions_and_reasons():
    early = sq.judge_share(0, 100, 0.01, ALPHA, BETA, False)
    assert early["decision"] == "continue" and early["upper"] is None and early["needed"] == 230
    assert early["reason"] == "0 % bad of 100; not yet enough requests: a pass needs at least 230 clean requests for 1 %"

    failed = sq.judge_share(30, 1200, 0.01, ALPHA, BETA, False)
    assert failed["decision"] == "fail" and failed["needed"] is None and failed["share"] == 0.025
    assert failed["lower"] == sq.lower_bound(30, 1200, ALPHA) > 0.01
    assert failed["reason"] == "2.5 %% bad of 1200; confidently above 1 %% (lower bound %s)" % (
        sq.format_share(failed["lower"]))

    passed = sq.judge_share(1, 1200, 0.01, ALPHA, BETA, True)
    assert passed["decision"] == "pass" and passed["upper"] == sq.final_upper_bound(1, 1200, BETA) <= 0.01
    assert "confidently within 1 %" in passed["reason"]

    undecided = sq.judge_share(8, 1200, 0.01, ALPHA, BETA, True)
    assert undecided["decision"] == "inconclusive" and undecided["upper"] > 0.01
    assert "undecided at the stage's last look" in undecided["reason"]

    # One bad request among 300: the reason names what a pass would have needed with it (388 requests).
    one_bad = sq.judge_share(1, 300, 0.01, ALPHA, BETA, True)
    assert one_bad["reason"] == ("0.333 % bad of 300; undecided at the stage's last look: the upper bound 1.29 % is "
                                 "above 1 % (with 1 bad, a pass needs at least 388 requests)")
    assert sq.final_upper_bound(1, 388, BETA) <= 0.01 < sq.final_upper_bound(1, 387, BETA)

    waiting = sq.judge_share(8, 1200, 0.01, ALPHA, BETA, False)
    assert waiting["decision"] == "continue" and "not yet confidently above 1 %" in waiting["reason"]
    assert set(waiting) == {"decision", "share", "lower", "upper", "limit", "bad", "total", "needed", "reason"}


def test_judge_share_without_requests():
    assert sq.judge_share(0, 0, 0.01, ALPHA, BETA, False)["reason"] == "no requests yet"
    final = sq.judge_share(0, 0, 0.01, ALPHA, BETA, True)
    assert (final["decision"], final["reason"], final["share"]) == ("inconclusive", "no requests", None)


def test_judge_vs_baseline_splits_alpha_and_beta():
    verdict = sq.judge_vs_baseline(30, 300, 60, 2700, sq.Margin(points=0.1), ALPHA, BETA, True)
    assert verdict["baseline_upper"] == sq.upper_bound_anytime(60, 2700, ALPHA * sq.BASELINE_SHARE)
    assert verdict["baseline_lower"] == sq.final_lower_bound(60, 2700, BETA * sq.BASELINE_SHARE)
    assert verdict["lower"] == sq.lower_bound(30, 300, ALPHA * (1 - sq.BASELINE_SHARE))
    assert verdict["upper"] == sq.final_upper_bound(30, 300, BETA * (1 - sq.BASELINE_SHARE))
    assert verdict["allowed"] == pytest.approx(verdict["baseline_upper"] + 0.1)
    assert verdict["allowed_final"] == pytest.approx(verdict["baseline_lower"] + 0.1)
    # 10 % of 300 against 2.2 % + 10 points: neither confidently above nor within.
    assert verdict["decision"] == "inconclusive" and verdict["limit"] == verdict["allowed_final"]
    assert verdict["baseline_share"] == pytest.approx(60 / 2700)


def test_judge_vs_baseline_decisions():
    margin = sq.Margin(points=0.01)
    assert sq.judge_vs_baseline(1, 3000, 3, 27000, margin, ALPHA, BETA, True)["decision"] == "pass"
    worse = sq.judge_vs_baseline(60, 3000, 3, 27000, margin, ALPHA, BETA, False)
    assert worse["decision"] == "fail" and worse["limit"] == worse["allowed"]
    assert "confidently above" in worse["reason"] and "(baseline 0.0111 % of 27000, margin +1 point(s))" in \
        worse["reason"]
    # The same canary next to a baseline as bad as it is: no regression.
    assert sq.judge_vs_baseline(60, 3000, 540, 27000, margin, ALPHA, BETA, True)["decision"] == "pass"


def test_judge_vs_baseline_without_baseline_traffic_cannot_fail():
    verdict = sq.judge_vs_baseline(300, 300, 0, 0, sq.Margin(points=0.01), ALPHA, BETA, False)
    assert verdict["baseline_upper"] == 1.0 and verdict["allowed"] == 1.0 and verdict["decision"] == "continue"
    assert verdict["baseline_share"] is None and "baseline no requests" in verdict["reason"]
    assert verdict["baseline_lower"] is None and verdict["allowed_final"] is None


def test_judge_vs_baseline_before_the_last_look_names_what_a_pass_needs_at_least():
    verdict = sq.judge_vs_baseline(0, 50, 0, 450, sq.Margin(points=0.01), ALPHA, BETA, False)
    assert verdict["decision"] == "continue" and verdict["upper"] is None
    # The baseline's anytime upper bound allows more than its final lower bound will: a floor on the count.
    assert verdict["needed"] == sq.requests_to_pass(verdict["allowed"], BETA * (1 - sq.BASELINE_SHARE))
    assert verdict["needed"] <= sq.requests_to_pass(0.01, BETA * (1 - sq.BASELINE_SHARE))
    assert "not yet enough requests: a pass needs at least %d clean requests" % verdict["needed"] in verdict["reason"]


def test_margin_allowances():
    assert sq.Margin().allowed(0.02) == 0.02
    assert sq.Margin(points=0.01).allowed(0.02) == pytest.approx(0.03)
    assert sq.Margin(ratio=0.5).allowed(0.02) == pytest.approx(0.03)
    assert sq.Margin(points=0.01, ratio=2.0).allowed(0.02) == pytest.approx(0.06)
    assert sq.Margin(points=0.5).allowed(0.8) == 1.0
    assert sq.Margin(points=0.01, ratio=0.5).describe() == "+1 point(s) or +50 %"


# ------------------------------------------------------------------------------------------------ validation

@pytest.mark.parametrize("kwargs, message", [
    ({"alpha": 0}, "alpha must be between 0 and 1"),
    ({"alpha": 1.0}, "alpha must be between 0 and 1"),
    ({"alpha": "0.1"}, "alpha must be a number"),
    ({"alpha": float("nan")}, "alpha must be a number"),
    ({"beta": True}, "beta must be a number"),
    ({"beta": -0.1}, "beta must be between 0 and 1"),
    ({"limit": 1.0}, "limit must be at least 0 and below 1"),
    ({"limit": -0.01}, "limit must be at least 0 and below 1"),
    ({"bad": -1}, "bad must not be negative"),
    ({"bad": 1.5}, "bad must be a whole number of requests"),
    ({"total": None}, "total must be a whole number of requests"),
    ({"bad": 11, "total": 10}, r"bad \(11\) must not exceed total \(10\)"),
])
def test_bad_input_is_a_clear_error(kwargs, message):
    arguments = {"bad": 1, "total": 10, "limit": 0.01, "alpha": ALPHA, "beta": BETA, "final": False}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        sq.judge_share(**arguments)


def test_bad_input_of_the_baseline_judge_is_a_clear_error():
    with pytest.raises(ValueError, match=r"baseline bad \(5\) must not exceed baseline total \(4\)"):
        sq.judge_vs_baseline(1, 10, 5, 4, sq.Margin(points=0.01), ALPHA, BETA, False)
    with pytest.raises(ValueError, match="margin must be a Margin"):
        sq.judge_vs_baseline(1, 10, 1, 10, 0.01, ALPHA, BETA, False)
    with pytest.raises(ValueError, match="margin points must be at least 0 and below 1"):
        sq.Margin(points=1.5)
    with pytest.raises(ValueError, match="margin ratio must be a number of at least 0"):
        sq.Margin(ratio=-0.5)


def test_whole_float_counts_are_accepted():
    assert sq.judge_share(3.0, 300.0, 0.01, ALPHA, BETA, False)["total"] == 300

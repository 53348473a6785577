# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The statistical judge of a canary stage: is the share of bad requests within a limit?

Every request is bad or not bad (a 5xx; or not 2xx/3xx; or slower than a histogram bucket bound), so a metric is a
share ``p`` of bad requests, counted as ``bad`` of ``total``. The judge answers at every look:

* **fail** as soon as the share is *confidently* above the limit: the anytime-valid lower bound of ``p`` is above
  it. The bound inverts a mixture likelihood ratio (Lindon, Sanden and Shirikian, "Rapid Regression Detection in
  Software Deployments through Sequential Testing", KDD 2022): against the null ``p = p0`` it mixes, with equal
  weights, the alternatives ``logit(p_k) = logit(p0) + s_k`` for the shifts ``SHIFTS_ABOVE``. Under any ``p <= p0``
  the ratio is a non-negative supermartingale, so by Ville's inequality it ever reaches ``1/alpha`` with probability
  at most ``alpha`` - however often one looks;
* **pass** only at the stage's last look, fixed in advance: the exact (Clopper-Pearson) one-sided upper bound at
  confidence ``1 - beta`` is within the limit;
* otherwise **continue**, and at the last look **inconclusive** (never a pass).

``judge_vs_baseline`` compares with a baseline (the stable deployment) measured at the same time: the allowed share
is the baseline's share plus a ``Margin``, with the baseline's own uncertainty taken the cautious way on each side.

Pure Python, standard library only. Counts of a million requests are fine (everything is in log space).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import numbers

# Shifts of the alternatives on the log-odds scale (0.25 .. 4, a factor sqrt(2) apart): small shifts make subtle
# regressions detectable, large ones make a gross fault fail within a handful of requests.
SHIFTS_ABOVE = tuple(0.25 * 2.0 ** (index / 2.0) for index in range(9))
SHIFTS_BELOW = tuple(-shift for shift in SHIFTS_ABOVE)
_ODDS_FACTORS = tuple(math.exp(shift) for shift in SHIFTS_ABOVE)

# The share of alpha and beta spent on the baseline's bounds in judge_vs_baseline (the canary gets the rest).
BASELINE_SHARE = 0.1

_LOGIT_RANGE = 50.0  # log-odds searched: shares from about 2e-22 to 1 - 2e-22
_LOGIT_TOLERANCE = 1e-8
_HIGHEST_LIMIT = 1.0 - 1e-12  # an allowance of 100 % still needs a limit below 1 for requests_to_pass


# ---------------------------------------------------------------------------------------------------- validation

def _check_probability(name, value, low_open=True):
    if isinstance(value, float) and (0.0 < value < 1.0 if low_open else 0.0 <= value < 1.0):  # the common case, fast
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError("%s must be a number, got %r" % (name, value))
    if low_open and not 0.0 < value < 1.0:
        raise ValueError("%s must be between 0 and 1 (both excluded), got %r" % (name, value))
    if not low_open and not 0.0 <= value < 1.0:
        raise ValueError("%s must be at least 0 and below 1, got %r" % (name, value))
    return float(value)


def _check_count(name, value):
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:  # the common case, fast
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError("%s must be a whole number of requests, got %r" % (name, value))
    if value != int(value):
        raise ValueError("%s must be a whole number of requests, got %r" % (name, value))
    if value < 0:
        raise ValueError("%s must not be negative, got %r" % (name, value))
    return int(value)


def _check_counts(bad, total, bad_name="bad", total_name="total"):
    bad = _check_count(bad_name, bad)
    total = _check_count(total_name, total)
    if bad > total:
        raise ValueError("%s (%d) must not exceed %s (%d)" % (bad_name, bad, total_name, total))
    return bad, total


# ----------------------------------------------------------------------------------------- the anytime-valid side

def _log_mean_exp(values):
    top = max(values)
    return top + math.log(sum(math.exp(value - top) for value in values) / len(values))


def _log_mixture_ratio(bad, total, logit_p0):
    """log of mean_k (p_k/p0)^bad ((1-p_k)/(1-p0))^(total-bad), with logit(p_k) = logit(p0) + s_k, and its slope
    in logit(p0). Written with the odds o = e^logit(p0): each term is bad*s_k - total*(log(1 + o*e^s_k) -
    log(1 + o)), strictly decreasing in p0 (log-odds stay within +-_LOGIT_RANGE, so o*e^s_k cannot overflow)."""
    odds = math.exp(logit_p0)
    base, base_share = math.log1p(odds), odds / (1.0 + odds)
    terms, slopes = [], []
    for shift, factor in zip(SHIFTS_ABOVE, _ODDS_FACTORS):
        shifted = odds * factor
        terms.append(bad * shift - total * (math.log1p(shifted) - base))
        slopes.append(-total * (shifted / (1.0 + shifted) - base_share))
    top = max(terms)
    weights = [math.exp(term - top) for term in terms]
    weight_sum = sum(weights)
    slope = sum(weight * term_slope for weight, term_slope in zip(weights, slopes)) / weight_sum
    return top + math.log(weight_sum / len(terms)), slope


def _expit(value):
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    small = math.exp(value)
    return small / (1.0 + small)


def _logit(share):
    return math.log(share) - math.log1p(-share)


def _score_guess(bad, total, tail, side):
    """A first guess (log-odds) of a bound ``side`` (-1 lower, +1 upper) of the share: Wilson's score bound with
    the normal quantile of ``tail`` taken roughly. It only saves iterations; the root finder does the rest."""
    share, spread = float(bad) / total, 2.0 * math.log(1.0 / tail)
    width = math.sqrt(spread * (share * (1.0 - share) / total + spread / (4.0 * total * total)))
    guess = (share + spread / (2.0 * total) + side * width) / (1.0 + spread / total)
    guess = min(max(guess, 0.1 / total), 1.0 - 0.1 / total)
    return max(-_LOGIT_RANGE, min(_LOGIT_RANGE, _logit(guess)))


def _decreasing_root(function, low, high, guess):
    """Where a strictly decreasing ``function`` (returning its value and slope) crosses 0, given
    ``function(low) >= 0 > function(high)``: Newton's steps from ``guess``, kept inside the bracket that every
    evaluation narrows (halving when a step would leave it). Returns ``(low, high)`` around the crossing, at most
    ``_LOGIT_TOLERANCE`` apart: ``low`` an evaluated point where ``function`` is >= 0, or, once a Newton step is
    shorter than half the tolerance, the step's end less half the tolerance."""
    point = guess if low < guess < high else (low + high) / 2.0
    for _iteration in range(200):
        value, slope = function(point)
        if value >= 0:
            low = point
        else:
            high = point
        if high - low <= _LOGIT_TOLERANCE:
            break
        step = point - value / slope if slope < 0 else None
        if step is not None and abs(step - point) <= _LOGIT_TOLERANCE / 2.0:
            # Converged: the crossing is within the tolerance of ``step``; the bracket says so on both sides.
            return max(low, step - _LOGIT_TOLERANCE / 2.0), min(high, step + _LOGIT_TOLERANCE / 2.0)
        point = step if step is not None and low < step < high else (low + high) / 2.0
    return low, high


def lower_bound(bad, total, alpha):
    """The anytime-valid lower bound of the bad share at level ``alpha``: the smallest ``p0`` the mixture test does
    not reject (it rejects ``p0`` when the mixture likelihood ratio reaches ``1/alpha``). 0.0 when no ``p0`` is
    rejected. The chance that it ever rises above the true share, over any number of looks, is at most ``alpha``."""
    bad, total = _check_counts(bad, total)
    alpha = _check_probability("alpha", alpha)
    threshold = -math.log(alpha)
    # As p0 -> 0 the ratio grows to its supremum mean_k e^(bad*s_k); below 1/alpha nothing is rejected.
    if bad == 0 or _log_mean_exp([bad * shift for shift in SHIFTS_ABOVE]) < threshold:
        return 0.0

    def excess(logit_p0):
        value, slope = _log_mixture_ratio(bad, total, logit_p0)
        return value - threshold, slope

    low = -_LOGIT_RANGE
    if excess(low)[0] < 0:
        return 0.0
    # At p0 = the observed share every alternative fits worse than the null: the ratio is <= 1 < 1/alpha there.
    high = _LOGIT_RANGE if bad == total else min(_logit(float(bad) / total), _LOGIT_RANGE)
    return _expit(_decreasing_root(excess, low, high, _score_guess(bad, total, alpha, -1))[0])


def upper_bound_anytime(bad, total, alpha):
    """The anytime-valid upper bound of the bad share at level ``alpha`` (mixture over the shifts below ``p0``):
    the lower bound of the good share, mirrored. 1.0 when no ``p0`` is rejected."""
    bad, total = _check_counts(bad, total)
    return 1.0 - lower_bound(total - bad, total, alpha)


# --------------------------------------------------------------------------------------------- the fixed-n side

def _beta_continued_fraction(a, b, x):
    """The continued fraction of the incomplete beta function (modified Lentz evaluation); converges fast for
    x < (a + 1) / (a + b + 2)."""
    tiny = 1e-300
    numerator_c = 1.0
    denominator_d = 1.0 - (a + b) * x / (a + 1.0)
    if abs(denominator_d) < tiny:
        denominator_d = tiny
    denominator_d = 1.0 / denominator_d
    value = denominator_d
    limit = 1000 + int(20 * math.sqrt(a + b))
    for step in range(1, limit + 1):
        twice = 2 * step
        # even term
        coefficient = step * (b - step) * x / ((a + twice - 1.0) * (a + twice))
        denominator_d = 1.0 + coefficient * denominator_d
        denominator_d = tiny if abs(denominator_d) < tiny else denominator_d
        numerator_c = 1.0 + coefficient / numerator_c
        numerator_c = tiny if abs(numerator_c) < tiny else numerator_c
        denominator_d = 1.0 / denominator_d
        value *= denominator_d * numerator_c
        # odd term
        coefficient = -(a + step) * (a + b + step) * x / ((a + twice) * (a + twice + 1.0))
        denominator_d = 1.0 + coefficient * denominator_d
        denominator_d = tiny if abs(denominator_d) < tiny else denominator_d
        numerator_c = 1.0 + coefficient / numerator_c
        numerator_c = tiny if abs(numerator_c) < tiny else numerator_c
        denominator_d = 1.0 / denominator_d
        change = denominator_d * numerator_c
        value *= change
        if abs(change - 1.0) < 1e-15:
            return value
    raise ArithmeticError("the incomplete beta function did not converge for a=%r, b=%r, x=%r" % (a, b, x))


def regularized_incomplete_beta(a, b, x):
    """I_x(a, b) for a, b > 0 and 0 <= x <= 1. For whole a, b it is P(Binomial(a + b - 1, x) >= a)."""
    if a <= 0 or b <= 0:
        raise ValueError("the incomplete beta function needs a > 0 and b > 0, got a=%r, b=%r" % (a, b))
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def _inverse_incomplete_beta(a, b, target, guess):
    """The bracket ``(low, high)`` around the x in (0, 1) with I_x(a, b) = target (I increases with x), searched on
    the log-odds scale so that small shares are as precise as large ones."""
    log_beta_function = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)

    def shortfall(logit_x):
        share = _expit(logit_x)
        # d I_x / d logit(x) = x^a (1 - x)^b / B(a, b)
        slope = -math.exp(a * math.log(share) + b * math.log1p(-share) - log_beta_function) if 0 < share < 1 else 0.0
        return target - regularized_incomplete_beta(a, b, share), slope

    low, high = _decreasing_root(shortfall, -_LOGIT_RANGE, _LOGIT_RANGE, guess)
    return _expit(low), _expit(high)


def final_upper_bound(bad, total, beta):
    """The exact (Clopper-Pearson) one-sided upper bound of the bad share at confidence ``1 - beta``, for one look
    fixed in advance: the share at which seeing ``bad`` or fewer bad requests has probability ``beta``."""
    bad, total = _check_counts(bad, total)
    beta = _check_probability("beta", beta)
    if total == 0 or bad == total:
        return 1.0
    if bad == 0:
        return -math.expm1(math.log(beta) / total)
    # P(X <= bad; p) = 1 - I_p(bad + 1, total - bad); the bound is where it equals beta (rounded up: cautious).
    return _inverse_incomplete_beta(bad + 1.0, float(total - bad), 1.0 - beta,
                                    _score_guess(bad, total, beta, 1))[1]


def final_lower_bound(bad, total, alpha):
    """The exact (Clopper-Pearson) one-sided lower bound of the bad share at confidence ``1 - alpha``, for one look
    fixed in advance: the share at which seeing ``bad`` or more bad requests has probability ``alpha``."""
    bad, total = _check_counts(bad, total)
    alpha = _check_probability("alpha", alpha)
    if bad == 0:
        return 0.0
    if bad == total:
        return math.exp(math.log(alpha) / total)
    # P(X >= bad; p) = I_p(bad, total - bad + 1); the bound is where it equals alpha (rounded down: cautious).
    return _inverse_incomplete_beta(float(bad), total - bad + 1.0, alpha, _score_guess(bad, total, alpha, -1))[0]


def requests_to_pass(limit, beta):
    """The fewest requests, all of them clean, whose final upper bound is within ``limit`` (None for a limit of 0:
    no number of requests shows a share of exactly 0)."""
    limit = _check_probability("limit", limit, low_open=False)
    beta = _check_probability("beta", beta)
    if limit == 0.0:
        return None
    # 1 - beta^(1/n) <= limit  <=>  n >= log(beta) / log(1 - limit); the float estimate is checked both ways.
    needed = max(1, int(math.ceil(math.log(beta) / math.log1p(-limit))))
    while needed > 1 and final_upper_bound(0, needed - 1, beta) <= limit:
        needed -= 1
    while final_upper_bound(0, needed, beta) > limit:
        needed += 1
    return needed


# --------------------------------------------------------------------------------------------------- the judges

def format_share(share):
    """A share as an operator reads it: ``0.013`` -> ``"1.3 %"``."""
    if share is None:
        return "n/a"
    return "%s %%" % ("%.3g" % (share * 100.0))


def _requests_to_pass_with(bad, limit, beta):
    """The fewest requests with ``bad`` of them bad whose final upper bound is within ``limit`` (None for a limit
    of 0): the upper bound falls as requests grow, so doubling then halving finds it."""
    if bad == 0 or limit == 0.0:
        return requests_to_pass(limit, beta)
    low, high = bad, max(bad + 1, requests_to_pass(limit, beta))
    while final_upper_bound(bad, high, beta) > limit:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if final_upper_bound(bad, middle, beta) > limit:
            low = middle
        else:
            high = middle
    return high


def _needs_sentence(needed, limit, bad=0, beta=None):
    if needed is None:
        return "a limit of 0 %% can never be shown to hold, only exceeded"
    if bad:
        return "with %d bad, a pass needs at least %d requests" % (bad, _requests_to_pass_with(bad, limit, beta))
    return "a pass needs at least %d clean requests for %s" % (needed, format_share(limit))


def _verdict(bad, total, fail_limit, pass_limit, lower, upper, needed, final, beta):
    """The decision and its reason: fail when ``lower`` is above ``fail_limit`` (any look); at the last look pass
    when ``upper`` is within ``pass_limit``, else inconclusive; before it, continue."""
    if total == 0:
        return ("inconclusive", "no requests") if final else ("continue", "no requests yet")
    observed = "%s bad of %d" % (format_share(float(bad) / total), total)
    if lower > fail_limit:
        return "fail", "%s; confidently above %s (lower bound %s)" % (observed, format_share(fail_limit),
                                                                      format_share(lower))
    if final:
        if upper <= pass_limit:
            return "pass", "%s; confidently within %s (upper bound %s)" % (observed, format_share(pass_limit),
                                                                           format_share(upper))
        return "inconclusive", ("%s; undecided at the stage's last look: the upper bound %s is above %s (%s)"
                                % (observed, format_share(upper), format_share(pass_limit),
                                   _needs_sentence(needed, pass_limit, bad, beta)))
    if needed is None or total < needed:
        return "continue", "%s; not yet enough requests: %s" % (observed, _needs_sentence(needed, pass_limit))
    return "continue", ("%s; not yet confidently above %s (lower bound %s); a pass is decided at the stage's last "
                        "look" % (observed, format_share(fail_limit), format_share(lower)))


def _look(decision, reason, bad, total, lower, upper, limit, needed):
    """The dict one look answers (judge_share's; judge_vs_baseline adds the baseline's fields)."""
    return {
        "decision": decision,
        "share": float(bad) / total if total else None,
        "lower": lower,
        "upper": upper,
        "limit": limit,
        "bad": bad,
        "total": total,
        "needed": needed if decision in ("continue", "inconclusive") else None,
        "reason": reason,
    }


def judge_share(bad, total, limit, alpha, beta, final):
    """One look at a bad share against an absolute ``limit``. ``alpha``: the chance of a false fail over all the
    stage's looks; ``beta``: the chance of a false pass at its last look (``final``). Returns a dict with
    ``decision`` ("fail", "pass", "continue" or "inconclusive"), ``share`` (None without requests), ``lower``,
    ``upper`` (None before the last look), ``limit``, ``bad``, ``total``, ``needed`` (clean requests a pass needs,
    None once decided) and ``reason`` (one sentence)."""
    bad, total = _check_counts(bad, total)
    limit = _check_probability("limit", limit, low_open=False)
    alpha = _check_probability("alpha", alpha)
    beta = _check_probability("beta", beta)
    lower = lower_bound(bad, total, alpha)
    upper = final_upper_bound(bad, total, beta) if final else None
    needed = requests_to_pass(limit, beta)
    decision, reason = _verdict(bad, total, limit, limit, lower, upper, needed, final, beta)
    return _look(decision, reason, bad, total, lower, upper, limit, needed)


class Margin:
    """How much worse than the baseline a share may be: ``points`` (absolute, a share: 0.01 is one point) and/or
    ``ratio`` (relative: 0.5 allows 50 % more). Given both, the larger allowance counts (a ratio alone allows
    nothing above a baseline of 0). Neither: no worse than the baseline."""

    def __init__(self, points=None, ratio=None):
        self.points = None if points is None else _check_probability("margin points", points, low_open=False)
        if ratio is not None:
            if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not math.isfinite(ratio) \
                    or ratio < 0:
                raise ValueError("margin ratio must be a number of at least 0, got %r" % (ratio,))
            ratio = float(ratio)
        self.ratio = ratio

    def allowed(self, baseline_share):
        """The highest share allowed next to a baseline share (at most 1)."""
        candidates = [baseline_share]
        if self.points is not None:
            candidates.append(baseline_share + self.points)
        if self.ratio is not None:
            candidates.append(baseline_share * (1.0 + self.ratio))
        return min(1.0, max(candidates))

    def describe(self):
        parts = []
        if self.points is not None:
            parts.append("+%s point(s)" % ("%.3g" % (self.points * 100.0)))
        if self.ratio is not None:
            parts.append("+%s %%" % ("%.3g" % (self.ratio * 100.0)))
        return " or ".join(parts) if parts else "no worse"

    def __repr__(self):
        return "Margin(points=%r, ratio=%r)" % (self.points, self.ratio)


def judge_vs_baseline(bad, total, base_bad, base_total, margin, alpha, beta, final):
    """One look at a bad share against a baseline's share plus ``margin``. ``alpha`` and ``beta`` are split
    between the canary (``1 - BASELINE_SHARE``) and the baseline (``BASELINE_SHARE``): fail when the canary's
    anytime lower bound is above what the baseline's anytime upper bound allows; at the last look pass when the
    canary's final upper bound is within what the baseline's final lower bound allows, else inconclusive.

    Returns the dict of ``judge_share`` (``limit`` is the allowed share the decision used) plus ``baseline_bad``,
    ``baseline_total``, ``baseline_share``, ``baseline_upper`` (anytime), ``baseline_lower`` (final, None before
    the last look), ``allowed`` (for failing: ``margin.allowed(baseline_upper)``), ``allowed_final`` (for passing:
    ``margin.allowed(baseline_lower)``, None before the last look) and ``margin`` (its description)."""
    bad, total = _check_counts(bad, total)
    base_bad, base_total = _check_counts(base_bad, base_total, "baseline bad", "baseline total")
    if not isinstance(margin, Margin):
        raise ValueError("margin must be a Margin, got %r" % (margin,))
    alpha = _check_probability("alpha", alpha)
    beta = _check_probability("beta", beta)
    canary_alpha, canary_beta = alpha * (1.0 - BASELINE_SHARE), beta * (1.0 - BASELINE_SHARE)
    baseline_upper = upper_bound_anytime(base_bad, base_total, alpha * BASELINE_SHARE)
    allowed = margin.allowed(baseline_upper)
    lower = lower_bound(bad, total, canary_alpha)
    baseline_lower = allowed_final = upper = None
    if final:
        baseline_lower = final_lower_bound(base_bad, base_total, beta * BASELINE_SHARE)
        allowed_final = margin.allowed(baseline_lower)
        upper = final_upper_bound(bad, total, canary_beta)
    # Before the last look the baseline's upper bound stands in for its final lower bound: it allows at least as
    # much, so the count is one a pass needs at the very least.
    pass_limit = allowed if allowed_final is None else allowed_final
    needed = requests_to_pass(min(pass_limit, _HIGHEST_LIMIT), canary_beta)
    decision, reason = _verdict(bad, total, allowed, pass_limit, lower, upper, needed, final, canary_beta)
    limit = allowed_final if final and decision != "fail" else allowed
    baseline_share = float(base_bad) / base_total if base_total else None
    reason = "%s (baseline %s, margin %s)" % (
        reason, "no requests" if baseline_share is None else "%s of %d" % (format_share(baseline_share), base_total),
        margin.describe())
    result = _look(decision, reason, bad, total, lower, upper, limit, needed)
    result.update({
        "baseline_bad": base_bad,
        "baseline_total": base_total,
        "baseline_share": baseline_share,
        "baseline_upper": baseline_upper,
        "baseline_lower": baseline_lower,
        "allowed": allowed,
        "allowed_final": allowed_final,
        "margin": margin.describe(),
    })
    return result

# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The arithmetic of PromQL that a direct ``/metrics`` scrape needs, as pure functions.

Two scrapes of a service's exposition give, per series, the counter's value at two moments. From them:

* ``counter_increase`` - the increase between the two values with counter resets handled the way Prometheus does
  (a value that dropped means the process restarted in between; the new value is then what was counted since);
* ``series_increase`` - the same for every series of a metric (a series missing from the first scrape counted from
  0: ``prometheus_client`` creates a labelled series at its first increment);
* ``histogram_quantile`` - the quantile of a classic histogram's bucket counts with the interpolation of PromQL's
  ``histogram_quantile`` (sort by upper bound, +Inf bucket required, buckets of one bound merged, counts made
  monotonic, the +Inf bucket answering the second highest bound, a lowest bucket with a bound of 0 or less
  answering its bound, linear interpolation from 0 in a positive lowest bucket, NaN without observations);
* ``divide`` - division as PromQL does it (0/0 is NaN, x/0 is +Inf or -Inf), so "no traffic" never reads 0 %.

Standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

NAN = float("nan")
INF = float("inf")


def parse_float(text):
    """A sample value or ``le`` bound as the exposition writes it (``+Inf``, ``-Inf``, ``NaN`` included)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    return float(str(text).strip())


def is_finite(value):
    return value is not None and not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def counter_increase(previous, current):
    """How much a counter grew from ``previous`` to ``current``. ``previous`` None: the series is new (counted
    from 0). A drop is a counter reset: the current value is the increase since the reset (what Prometheus's
    ``increase``/``rate`` assume too). NaN in, NaN out."""
    current = float(current)
    if previous is None:
        return current
    previous = float(previous)
    if math.isnan(previous) or math.isnan(current):
        return NAN
    if current < previous:
        return current
    return current - previous


def series_increase(before, after):
    """``{series_key: increase}`` for every series of ``after`` (``before``/``after``: ``{series_key: value}``).
    A series only in ``before`` (gone from the exposition) has no increase to report and is left out."""
    return dict((key, counter_increase(before.get(key), value)) for key, value in after.items())


def divide(numerator, denominator):
    """``numerator / denominator`` with IEEE semantics, as PromQL: 0/0 is NaN, x/0 is +Inf or -Inf."""
    numerator = float(numerator)
    denominator = float(denominator)
    if denominator == 0:
        if numerator == 0 or math.isnan(numerator):
            return NAN
        return math.copysign(INF, numerator) * math.copysign(1.0, denominator)
    return numerator / denominator


def _coalesce(buckets):
    """Buckets of one upper bound merged (their counts added); input sorted by bound."""
    merged = []
    for bound, count in buckets:
        if merged and merged[-1][0] == bound:
            merged[-1][1] += count
        else:
            merged.append([bound, count])
    return merged


def _ensure_monotonic(buckets):
    """The envelope of the cumulative counts: a count below an earlier bucket's is raised to it."""
    highest = buckets[0][1]
    for bucket in buckets[1:]:
        if bucket[1] > highest:
            highest = bucket[1]
        elif bucket[1] < highest:
            bucket[1] = highest


def histogram_quantile(q, buckets):
    """The ``q``-quantile of cumulative bucket counts ``[(upper_bound, count), ...]`` (any order, ``upper_bound``
    a float or its text such as ``+Inf``), as PromQL's ``histogram_quantile`` computes it for classic histograms.

    NaN for q NaN, fewer than two buckets, no +Inf bucket or no observations; -Inf for q < 0, +Inf for q > 1.
    """
    q = float(q)
    if math.isnan(q):
        return NAN
    if q < 0:
        return -INF
    if q > 1:
        return INF
    items = sorted(((parse_float(bound), float(count)) for bound, count in buckets), key=lambda item: item[0])
    if not items or not math.isinf(items[-1][0]) or items[-1][0] < 0:
        return NAN
    items = _coalesce(items)
    _ensure_monotonic(items)
    if len(items) < 2:
        return NAN
    observations = items[-1][1]
    if observations == 0 or math.isnan(observations):
        return NAN
    rank = q * observations
    index = len(items) - 1
    for position in range(len(items) - 1):
        if items[position][1] >= rank:
            index = position
            break
    if index == len(items) - 1:
        return items[-2][0]
    if index == 0 and items[0][0] <= 0:
        return items[0][0]
    start = 0.0
    end = items[index][0]
    count = items[index][1]
    if index > 0:
        start = items[index - 1][0]
        count -= items[index - 1][1]
        rank -= items[index - 1][1]
    # Go's float division: an empty bucket (q=0 on a leading empty bucket) gives NaN, as in PromQL.
    return start + (end - start) * divide(rank, count)


def bucket_increase(before, after):
    """The bucket counts observed between two scrapes, summed by ``le``: ``before``/``after`` are
    ``{series_key: value}`` of ``_bucket`` series whose key holds an ``le`` label (``(name, ((label, value), ...))``);
    returns ``[(le, increase), ...]`` ready for ``histogram_quantile``."""
    totals = {}
    for key, increase in series_increase(before, after).items():
        le = dict(key[1]).get("le")
        if le is None:
            continue
        bound = parse_float(le)
        totals[bound] = totals.get(bound, 0.0) + increase
    return sorted(totals.items())

# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Request and latency counts from raw counter samples: one computation for the direct scrape and for Prometheus.

Both sources give the same thing at each read: the raw value of every counter series, keyed
``(origin, sample_name, ((label, value), ...))`` - the origin is the scrape target's position for a direct scrape
(several replicas of one variant are added up) and empty for Prometheus (its ``instance`` label tells replicas
apart). ``CounterTotals`` keeps the last value of every series and adds up, read after read, each series' increase
with PromQL's reset rule (``promql_math.counter_increase``: a value that dropped is a restart, the new value is
what was counted since). A series missing from every earlier read is counted from 0: the service creates a
labelled series at its first increment, so a canary's first 5xx series is born with the value 1 (or 2, or more by
the time of the next scrape). ``rate()``/``increase()`` in Prometheus need two samples of a series and miss
exactly those first increments; reading the raw samples does not.

``Counts`` answers the questions the judges ask of a set of increases: requests (by status class), bucket counts by
``le``, and the share of bad requests of a kind (5xx, not 2xx/3xx, slower than a bucket boundary).

Resets are seen between two reads: a process that restarted and counted past its old value between two reads is
counted short, as Prometheus would count it between two scrapes. Standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import promql_math as pm

# The kinds whose value is the share of bad requests (the sequential judge's input).
SHARE_KINDS = ("error_rate", "availability", "slow_share")
# Two bucket bounds closer than this are one (YAML 0.25 and the exposition's "0.25" parse alike; 1e-9 is slack).
BOUND_TOLERANCE = 1e-9


class BoundaryError(ValueError):
    """A latency boundary that is not an upper bound of the service's histogram buckets."""

    def __init__(self, boundary, bounds):
        self.boundary = boundary
        self.bounds = bounds
        shown = ", ".join(pm_format(b) for b in bounds if math.isfinite(b)) or "none"
        super(BoundaryError, self).__init__(
            "%s s is not a bucket bound of the latency histogram (its bounds: %s); a share slower than a value "
            "between two bounds cannot be counted exactly: use one of the bounds" % (pm_format(boundary), shown))


def pm_format(number):
    """A bound as people write it: 0.25, 1, 10."""
    return ("%.6f" % number).rstrip("0").rstrip(".")


def prometheus_samples(series, origin=""):
    """An instant vector ``[(labels, [(ts, value)])]`` (labels with ``__name__``) -> samples keyed as a read."""
    samples = {}
    for labels, points in series:
        if not points:
            continue
        labels = dict(labels)
        name = labels.pop("__name__", "")
        samples[(origin, name, tuple(sorted(labels.items())))] = points[-1][1]
    return samples


def snapshot_samples(snapshot, origin, names):
    """The counter samples of one scrape (``metrics_sources.Snapshot``) that a count needs, keyed as a read."""
    wanted = (names["requests_metric"], names["latency_metric"] + "_bucket")
    return dict(((origin,) + key, value) for key, value in snapshot.samples.items() if key[0] in wanted)


class CounterTotals:
    """Increases of every series since the first read (the baseline), accumulated read by read."""

    def __init__(self):
        self.last = None
        self.totals = {}
        self.reads = 0
        self.started_at = None
        self.at = None

    @property
    def started(self):
        return self.last is not None

    def read(self, samples, at):
        """Add one read ``{key: value}`` taken at ``at`` (epoch seconds); returns this read's own increases
        (``{}`` for the baseline read)."""
        self.reads += 1
        if self.last is None:
            self.last = dict(samples)
            self.started_at = self.at = at
            return {}
        window = {}
        for key, value in samples.items():
            increase = pm.counter_increase(self.last.get(key), value)
            window[key] = increase
            self.totals[key] = self.totals.get(key, 0.0) + increase
            self.last[key] = value
        self.at = at
        return window


class Counts:
    """What a variant counted: ``increases`` ``{(origin, name, labels): increase}``, filtered by the names of
    ``names`` (``requests_metric``, ``latency_metric``, ``status_label``, ``route_label``, ``exclude_routes``)."""

    def __init__(self, increases, names, seconds=None, at=None):
        self.increases = increases
        self.names = names
        self.seconds = seconds
        self.at = at

    def _selected(self, name, match):
        excluded = self.names.get("exclude_routes") or ()
        route_label = self.names.get("route_label")
        for (_origin, sample, labels), value in self.increases.items():
            if sample != name:
                continue
            labels = dict(labels)
            if excluded and labels.get(route_label) in excluded:
                continue
            if any(labels.get(label) != wanted for label, wanted in (match or {}).items()):
                continue
            yield labels, value

    def requests(self, match=None, status_prefixes=None):
        """The requests counted (whose status starts with one of ``status_prefixes`` when given)."""
        total = 0.0
        label = self.names["status_label"]
        for labels, value in self._selected(self.names["requests_metric"], match):
            if status_prefixes is not None and not str(labels.get(label, "")).startswith(status_prefixes):
                continue
            total += value
        return total

    def buckets(self, match=None):
        """``[(upper_bound, count)]`` of the latency histogram, summed over the selected series, sorted."""
        totals = {}
        for labels, value in self._selected(self.names["latency_metric"] + "_bucket", match):
            if labels.get("le") is None:
                continue
            bound = pm.parse_float(labels["le"])
            totals[bound] = totals.get(bound, 0.0) + value
        return sorted(totals.items())

    def slower_than(self, boundary, match=None):
        """``(slow, total)``: requests slower than ``boundary`` seconds and all requests, from the buckets (exact when
        the boundary is a bucket bound: BoundaryError otherwise, once the histogram has a bucket at all)."""
        buckets = self.buckets(match)
        if not buckets:
            return 0.0, 0.0
        total = buckets[-1][1] if math.isinf(buckets[-1][0]) else None
        within = [count for bound, count in buckets if abs(bound - boundary) <= BOUND_TOLERANCE * max(1.0, boundary)]
        if total is None or not within:
            raise BoundaryError(boundary, [bound for bound, _count in buckets])
        return max(0.0, total - within[0]), total

    def bad_share(self, kind, match=None, boundary=None):
        """``(bad, total)`` requests for a share kind: 5xx (error_rate), not 2xx/3xx (availability), slower than
        ``boundary`` (slow_share)."""
        if kind == "slow_share":
            return self.slower_than(boundary, match)
        total = self.requests(match)
        if kind == "error_rate":
            return self.requests(match, ("5",)), total
        if kind == "availability":
            return max(0.0, total - self.requests(match, ("2", "3"))), total
        raise ValueError("%s is not a share kind (%s)" % (kind, ", ".join(SHARE_KINDS)))

    def value(self, kind, match=None, quantile=None, boundary=None):
        """The value of a kind over these counts, as the threshold judge reads it (NaN without requests)."""
        if kind == "latency_quantile":
            return pm.histogram_quantile(quantile, self.buckets(match))
        if kind in SHARE_KINDS:
            bad, total = self.bad_share(kind, match, boundary)
            share = pm.divide(bad, total)
            return 1.0 - share if kind == "availability" and pm.is_finite(share) else share
        total = self.requests(match)
        if kind == "request_rate":
            return pm.divide(total, self.seconds or 0.0)
        return total

    def p95(self, match=None):
        """The p95 the buckets give (evidence only: coarse buckets make it jump a whole bucket)."""
        return pm.histogram_quantile(0.95, self.buckets(match))

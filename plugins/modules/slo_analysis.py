#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: slo_analysis
short_description: Measure SLO metrics of a release repeatedly and judge them (error rate, latency, availability, canary vs stable)
version_added: 0.1.0
description:
  - Measures a list of metrics, all at the same time, each O(metrics[].count) times O(metrics[].interval) seconds apart,
    and returns one check result record per metric (criteria C(slo.error_rate), C(slo.latency_p95), C(slo.availability),
    C(slo.vs_stable) or any other) plus, when asked, one C(monitoring.configured) record. The records are data for the
    release gate; a failing metric does not fail the task.
  - The numbers come from the Prometheus HTTP API (O(source=prometheus)) or from the services' own C(/metrics)
    expositions scraped directly (O(source=scrape)). A metric with a O(metrics[].kind) is counted the same way from
    either source - the raw samples of the request counter and of the latency buckets are read at each look (an
    instant query of the series selected by O(prometheus.variants), or the scrape), and their increases are taken per
    series with PromQL's reset rule, a series born after the first read counted from 0 (the first 5xx of a canary,
    which C(rate()) and C(increase()) miss). A metric with a O(metrics[].query) (Prometheus only) is a PromQL value
    judged against a threshold (an instant query, or a range query where every point must hold).
  - Two judges (O(metrics[].judge)). C(threshold) - each measurement's value over the window since the previous read
    against O(metrics[].condition), with Argo's limits below. C(sequential) - the share of bad requests (5xx,
    not 2xx/3xx, or slower than O(metrics[].boundary)) counted from the first read (the baseline at the start of the
    call, or O(since)) is judged at every look by a test whose false alarm rate holds however often it looks - a look
    answers C(fail) (confidently worse than the limit, or than the baseline variant by more than the margin of
    O(metrics[].compare)), C(pass) (confidently within) or C(continue) (keep measuring). The last look
    (O(metrics[].count)) is final - undecided there is C(Inconclusive), never a pass (unless O(final_look=false)).
    No minimum request count applies; a handful of requests never decides. See the collection's docs/criteria.md.
  - Each measurement is C(successful), C(failed), C(inconclusive) or C(error). Inconclusive - the query returned an
    empty vector, more than one series where one is expected (the labels that differ are named), NaN or +/-Inf, or
    less traffic than O(metrics[].traffic.min). No data is never a pass. Error - no answer, an HTTP error, or
    Prometheus's own error (its text is shown, for example the parse error of a malformed PromQL).
  - With the C(sequential) judge a metric is C(Failed) at the first confidently worse look, C(Error) after more
    errors in a row than O(metrics[].consecutive_error_limit), and otherwise decided by its last look;
    O(metrics[].failure_limit), O(metrics[].inconclusive_limit) and O(metrics[].traffic) are for the C(threshold)
    judge (they must be unset or 0). The raw p95 of the buckets is kept in each look of a C(slow_share) metric as
    evidence, never judged.
  - With O(source=prometheus) a counted metric's look waits for fresh data - until Prometheus has scraped every target
    of the variant (the scrape targets whose labels hold the C(label="value") matchers of its selector) after the
    look began, at most one scrape interval (from C(lastScrape) and C(scrapeInterval) of the targets API). So a fault
    is decided within one O(metrics[].interval) plus one scrape interval of the requests that show it.
  - A C(threshold) metric's phase follows Argo Rollouts' analysis - C(Failed) once more measurements failed than
    O(metrics[].failure_limit), C(Inconclusive) once more were inconclusive than O(metrics[].inconclusive_limit),
    C(Error) once more errors came in a row than O(metrics[].consecutive_error_limit), C(Successful) once
    O(metrics[].count) measurements were taken with at least one successful. A measurement in error is taken again at
    the next interval (it does not count towards O(metrics[].count)).
  - A metric stops once its phase is decided. As soon as a blocking metric fails the whole call stops (fail fast) -
    the rollback decision is the first measurement that sees the failure, within one O(metrics[].interval) of it
    with O(source=scrape), plus the time Prometheus takes to see it with O(source=prometheus) - one scrape interval
    for a counted metric (a O(metrics[].kind)); a PromQL C(rate()) needs two samples of a series, so a 5xx series that
    did not exist before (the first errors of a freshly started canary) costs a PromQL query a second scrape. The
    other metrics still running are reported as C(skipped) records saying so.
  - The records - C(Successful) is C(pass), C(Failed) is C(fail), C(Inconclusive) is C(error) with
    C(evidence.outcome=inconclusive) (the gate's NO-GO-INCONCLUSIVE), C(Error) is C(error). A dry-run metric
    (O(metrics[].dry_run)) is reported with C(blocking=false) and never stops the call.
  - O(require_targets) and O(require_rules) add one C(monitoring.configured) record - every target of each named
    Prometheus job up, and each named recording or alerting rule loaded (and not failing to evaluate).
author:
  - CleanWithSnapshot release engineering (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The analysis only reads metrics; it runs for real in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  source:
    description:
      - Where the numbers come from - the Prometheus HTTP API (O(prometheus)) or a direct scrape of the services'
        C(/metrics) (O(scrape)).
    type: str
    choices: [prometheus, scrape]
    default: prometheus
  prometheus:
    description:
      - The Prometheus server. Required with O(source=prometheus), O(require_targets) or O(require_rules).
    type: dict
    suboptions:
      url:
        description: The server's base URL, for example V(http://127.0.0.1:9090). Credentials in it are never printed.
        type: str
        required: true
      bearer_token:
        description: A token sent in the C(Authorization) header as C(Bearer <token>). Never printed.
        type: str
      url_username:
        description: User name for HTTP Basic authentication (a Prometheus behind an authenticating proxy).
        type: str
      url_password:
        description: Password for HTTP Basic authentication. Never printed.
        type: str
      validate_certs:
        description: Verify the TLS certificate of an https URL.
        type: bool
        default: true
      ca_path:
        description: A PEM file of CA certificates to verify the server with.
        type: path
      timeout:
        description: Seconds to wait for each answer (never longer than what is left of O(deadline)).
        type: float
        default: 10
      headers:
        description: Extra request headers (for example C(X-Scope-OrgID)). Credential headers are never printed.
        type: dict
        default: {}
      variants:
        description:
          - For metrics with a O(metrics[].kind) - per variant name (V(canary), V(stable)) the PromQL label matchers,
            without braces, that select its raw counter series, for example C(job="api-canary",route!="/metrics").
            The series are read as they are (no C(rate), no sum) and counted per series.
          - Its C(label="value") matchers that are target labels (C(job), C(instance)) also find the variant's scrape
            targets, whose last scrape tells when fresh data is there.
        type: dict
      requests_metric:
        description: The request counter read for counted metrics (its samples' name, with C(_total)).
        type: str
        default: http_requests_total
      latency_metric:
        description: The latency histogram read for counted metrics (without C(_bucket)), in seconds.
        type: str
        default: http_request_latency_seconds
      status_label:
        description: The label of O(prometheus.requests_metric) that holds the status (C(5xx), C(2xx) or C(503)).
        type: str
        default: status_class
  since:
    description:
      - O(source=prometheus) - count counted metrics from this time instead of the call's first read - epoch seconds
        or an RFC 3339 time with its zone (V(2026-12-07T04:00:00Z)). The counters' values at that time (Prometheus'
        instant query at it) are the baseline, so a soak judged round by round counts from the soak's start.
    type: str
  final_look:
    description:
      - Whether the last look (O(metrics[].count)) of a C(sequential) metric is the final one of its judgement. V(false)
        for the interim rounds of a soak - undecided there holds (C(pass), with a note) instead of ending
        C(Inconclusive); a confidently worse look still fails.
    type: bool
    default: true
  scrape:
    description:
      - The services' own metrics endpoints, for O(source=scrape). Every target is scraped once per tick and every
        metric is computed from the same two scrapes.
      - The scraped services must export Prometheus counters and histograms shaped like the real service's -
        C(http_requests_total{method,route,status_class,service}) and
        C(http_request_latency_seconds_bucket{...,le}) (names and the status label can be changed below).
      - On the real service C(/metrics) counts against the rate limit (30 requests a minute per client), like any
        other path but the health paths; an O(metrics[].interval) of 5 seconds or more keeps a scrape target at 12 a
        minute at most.
    type: dict
    suboptions:
      targets:
        description:
          - One entry per process to scrape. Several targets with one O(scrape.targets[].variant) (replicas) are
            added up; each must be one process (its own URL, not through a load balancer), or its counters would
            jump between processes.
        type: list
        elements: dict
        required: true
        suboptions:
          variant:
            description: The variant the target serves, for example V(canary) or V(stable).
            type: str
            required: true
          url:
            description: The full URL of the exposition, for example V(http://10.0.0.5:8000/metrics).
            type: str
            required: true
          bearer_token:
            description:
              - Sent in the C(Authorization) header as C(Bearer <token>); the real service's C(/metrics) wants its
                C(METRICS_TOKEN). Never printed.
            type: str
          headers:
            description: Extra request headers. Credential headers are never printed.
            type: dict
      timeout:
        description: Seconds to wait for each scrape (never longer than what is left of O(deadline)).
        type: float
        default: 10
      validate_certs:
        description: Verify TLS certificates of https targets.
        type: bool
        default: true
      ca_path:
        description: A PEM file of CA certificates to verify the targets with.
        type: path
      requests_metric:
        description: The request counter (its samples' name, with C(_total)).
        type: str
        default: http_requests_total
      latency_metric:
        description: The latency histogram's name (without C(_bucket)), in seconds.
        type: str
        default: http_request_latency_seconds
      status_label:
        description:
          - The label of O(scrape.requests_metric) that holds the status - a value starting with C(5) is an error
            (C(5xx) or C(503)), with C(2) or C(3) a success.
        type: str
        default: status_class
      route_label:
        description: The label that holds the route (for O(scrape.exclude_routes)).
        type: str
        default: route
      exclude_routes:
        description:
          - Routes whose requests are not counted by any metric. The service counts the scrapes of its own
            C(/metrics) (this module's and Prometheus's) in C(http_requests_total); counted, they would be traffic
            although no user sent a request, and would dilute the error rate.
        type: list
        elements: str
        default: [/metrics]
  metrics:
    description:
      - The metrics to measure, all at the same time. Names must be unique.
      - Every metric needs a O(metrics[].condition), a O(metrics[].compare) or both.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The metric's name, the record's C(name).
        type: str
        required: true
      criterion:
        description: The record's criterion. Defaults to C(slo.<name>).
        type: str
      query:
        description:
          - O(source=prometheus) - the PromQL expression; its value must be one number (a scalar or a vector of one
            series). An instant query at the time of each measurement unless O(metrics[].range) is set.
          - Select the variant by the Prometheus C(job) (C(clean-api) for stable, C(api-canary) for the canary on the
            real service) - the C(service) label is the API's C(APP_NAME), C(api) and C(api-canary) in the service's
            compose files, but the app's own default C(cleaning-economy-bot) where an API runs without them.
          - The real recording rules (C(sli:canary_error_rate5m) and the others) divide by C(clamp_min(total, 1)), which
            reads 0 % errors when there is no traffic at all. Either divide by the plain total (no traffic is then NaN,
            an inconclusive measurement) or set O(metrics[].traffic) - set it anyway.
          - A service that has answered no 5xx yet has no 5xx series, so C(sum(rate(...{status_class="5xx"}[1m])))
            is an empty vector (an inconclusive measurement, never a pass). Write the numerator as
            C((sum(rate(...{status_class="5xx"}[1m])) or vector(0))) to read 0 % when there are requests but no errors.
            Even so C(rate()) misses the first errors of a new series (it needs two samples); a O(metrics[].kind) with
            O(prometheus.variants) counts them.
          - The service counts Prometheus's own scrapes of C(/metrics) in C(http_requests_total); leave them out with
            C(route!="/metrics"), or a canary without any user traffic still shows traffic (and a diluted error rate).
        type: str
      range:
        description:
          - O(source=prometheus) - run O(metrics[].query) as a range query over the last O(metrics[].range.seconds)
            at every O(metrics[].range.step); every point must satisfy O(metrics[].condition) (a NaN point makes the
            measurement inconclusive). Not with O(metrics[].compare).
        type: dict
        suboptions:
          seconds:
            description: The length of the range, ending at the measurement.
            type: float
            required: true
          step:
            description: The resolution of the range, in seconds.
            type: float
            required: true
      kind:
        description:
          - What to count from the raw counter samples of the O(metrics[].variant) (its O(scrape.targets) or its
            O(prometheus.variants) selector), over the requests selected by O(metrics[].match). Not with
            O(metrics[].query).
          - C(error_rate) - the share of requests whose status is 5xx (a ratio, 0.01 is 1 %).
          - C(availability) - the share of requests answered 2xx or 3xx.
          - C(slow_share) - the share of requests slower than O(metrics[].boundary), from the histogram's buckets.
          - C(latency_quantile) - the O(metrics[].quantile) of the latency histogram's bucket increases, in seconds.
          - C(request_rate) - requests per second.
          - C(requests) - the number of requests.
        type: str
        choices: [error_rate, availability, slow_share, latency_quantile, request_rate, requests]
      boundary:
        description:
          - O(metrics[].kind=slow_share) - the latency in seconds above which a request is slow. It must be an upper
            bound (C(le)) of the service's histogram buckets (the real service - 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10), so
            the share is exact; another value ends the metric in C(error) naming C(metrics[N].boundary).
        type: float
      judge:
        description:
          - C(threshold) - each measurement against O(metrics[].condition) / O(metrics[].compare), with Argo's limits.
          - C(sequential) - the bad share counted from the first read, judged at every look with an anytime-valid
            test (O(metrics[].kind) C(error_rate), C(availability) or C(slow_share)). A O(metrics[].condition) gives the
            limit (C(le)/C(lt) a share for errors and slow requests, C(ge)/C(gt) for availability); a
            O(metrics[].compare) against O(metrics[].compare.baseline_variant) allows O(metrics[].compare.max_increase)
            points (and/or O(metrics[].compare.max_increase_ratio)) more bad share than the baseline's.
          - Defaults to O(defaults.judge).
        type: str
        choices: [threshold, sequential]
      false_fail_rate:
        description:
          - C(sequential) - the chance (alpha) that this metric fails a variant that is in fact within its limit, over
            all its looks together. Defaults to O(defaults.false_fail_rate).
        type: float
      false_pass_rate:
        description:
          - C(sequential) - the chance (beta) that the final look passes a variant that is in fact worse than the limit.
            Defaults to O(defaults.false_pass_rate).
        type: float
      variant:
        description:
          - O(source=scrape) - the variant whose targets are measured (required there).
          - O(source=prometheus) - a label for the summary only (for example V(canary)).
          - Defaults to O(defaults.variant).
        type: str
      match:
        description:
          - O(source=scrape) - label values the series must have, for example C(route) V(/v1/estimate) and C(method) V(GET).
          - Defaults to O(defaults.match).
        type: dict
      quantile:
        description:
          - O(metrics[].kind=latency_quantile) - the quantile, between 0 and 1. Defaults to O(defaults.quantile).
        type: float
      unit:
        description:
          - How the summary writes values - C(ratio) as a percentage, C(seconds) in milliseconds, C(plain) as they are.
          - Defaults from O(metrics[].kind), else from the criterion (C(slo.error_rate) and C(slo.availability) are
            ratios, C(slo.latency_*) seconds), else C(plain).
        type: str
        choices: [ratio, seconds, plain]
      condition:
        description:
          - What a successful measurement's value satisfies - C(value <op> O(metrics[].condition.value)).
        type: dict
        suboptions:
          op:
            description:
              - One of C(lt), C(le), C(gt), C(ge), C(eq), C(ne) (another is refused naming C(metrics[N].condition.op)).
            type: str
            required: true
          value:
            description: The threshold, in the metric's own unit (a ratio for rates - V(0.01) is 1 %; seconds for latency).
            type: float
            required: true
      traffic:
        description:
          - The least traffic a measurement needs; with less it is inconclusive, whatever the value says.
          - O(source=prometheus) - O(metrics[].traffic.query) is a PromQL expression whose value is the number of
            requests in the window (for example C(sum(increase(http_requests_total{job="api-canary"}[1m])))).
          - O(source=scrape) - the variant's requests (selected by O(metrics[].match)) between two scrapes; always
            checked (with a minimum of 1 when not set). With O(metrics[].compare) the baseline variant needs as many.
          - Defaults to O(defaults.traffic).
        type: dict
        suboptions:
          query:
            description: O(source=prometheus) - the request count's PromQL expression.
            type: str
          min:
            description: The least number of requests.
            type: float
            aliases: [min_requests]
      compare:
        description:
          - Compare with the stable variant (criterion C(slo.vs_stable)) - the measurement fails when the value is worse
            than the baseline's by more than O(metrics[].compare.max_increase) (absolute) or by more than
            O(metrics[].compare.max_increase_ratio) of the baseline (each one given must hold).
          - A baseline of 0 allows no increase by ratio at all; give O(metrics[].compare.max_increase) for error rates.
          - A NaN baseline (or a baseline variant without traffic) makes the measurement inconclusive.
        type: dict
        suboptions:
          baseline_query:
            description: For a metric with a O(metrics[].query) - the stable variant's PromQL expression.
            type: str
          baseline_variant:
            description:
              - For a metric with a O(metrics[].kind) - the stable variant (a O(scrape.targets[].variant) or a name of
                O(prometheus.variants)).
            type: str
          baseline_label:
            description: The baseline's name in summaries. Defaults to the baseline variant, else V(stable).
            type: str
          max_increase:
            description: The largest allowed degradation in the metric's unit (V(0.005) is 0.5 points of error rate).
            type: float
          max_increase_ratio:
            description: The largest allowed degradation as a share of the baseline (V(0.5) - at most 50 % worse).
            type: float
          worse:
            description:
              - Which direction is worse. Defaults to C(lower) for O(metrics[].kind=availability), else C(higher).
            type: str
            choices: [higher, lower]
      interval:
        description: Seconds between measurements. Defaults to O(defaults.interval).
        type: float
      count:
        description: Measurements to take. Defaults to O(defaults.count).
        type: int
      failure_limit:
        description: Failed measurements tolerated; more make the metric C(Failed). Defaults to O(defaults.failure_limit).
        type: int
      inconclusive_limit:
        description:
          - Inconclusive measurements tolerated; more make the metric C(Inconclusive). Defaults to
            O(defaults.inconclusive_limit).
        type: int
      consecutive_error_limit:
        description:
          - Errors in a row tolerated (each is measured again at the next interval); more make the metric C(Error).
            Defaults to O(defaults.consecutive_error_limit).
        type: int
      blocking:
        description: Whether the record gates the release. Defaults to O(defaults.blocking).
        type: bool
      dry_run:
        description:
          - Measure and report, never block - the record is C(blocking=false) and a failure does not stop the call.
            Defaults to O(defaults.dry_run).
        type: bool
  defaults:
    description:
      - Settings for every metric that does not set its own.
    type: dict
    default: {}
    suboptions:
      judge:
        description: The judge of every metric that names none (see O(metrics[].judge)).
        type: str
        choices: [threshold, sequential]
        default: threshold
      false_fail_rate:
        description: The sequential judge's false alarm rate (alpha) per metric.
        type: float
        default: 0.01
      false_pass_rate:
        description: The sequential judge's false pass rate (beta) per metric at the final look.
        type: float
        default: 0.1
      interval:
        description: Seconds between measurements.
        type: float
        default: 30
      count:
        description: Measurements per metric.
        type: int
        default: 3
      failure_limit:
        description: Failed measurements tolerated (less than the count).
        type: int
        default: 0
      inconclusive_limit:
        description: Inconclusive measurements tolerated (less than the count).
        type: int
        default: 0
      consecutive_error_limit:
        description: Errors in a row tolerated (Argo's default).
        type: int
        default: 4
      blocking:
        description: Whether the records gate the release.
        type: bool
        default: true
      dry_run:
        description: Measure and report only.
        type: bool
        default: false
      variant:
        description: The variant of every metric that names none.
        type: str
      match:
        description: O(source=scrape) - label values every metric's series must have.
        type: dict
      quantile:
        description: The quantile of C(latency_quantile) metrics.
        type: float
        default: 0.95
      traffic:
        description: The traffic requirement of every metric that sets none (as O(metrics[].traffic)).
        type: dict
        suboptions:
          query:
            description: O(source=prometheus) - the request count's PromQL expression.
            type: str
          min:
            description: The least number of requests.
            type: float
            aliases: [min_requests]
  deadline:
    description:
      - The time budget of the whole call in seconds, on a monotonic clock. Every metric's schedule must fit in it
        (checked before anything is measured); a metric still undecided when it passes is C(Inconclusive) (C(Error)
        when its last measurement was an error), never a pass.
    type: float
    default: 600
  require_targets:
    description:
      - Prometheus jobs (C(job) label) that must be scraped with every active target up, for example
        V(clean-api) and V(api-canary). Gives the C(monitoring.configured) record; needs O(prometheus).
    type: list
    elements: str
  require_rules:
    description:
      - Recording or alerting rule names that must be loaded in Prometheus (and not failing), for example
        V(sli:canary_error_rate5m) and V(CanaryHighErrorRate). Gives the C(monitoring.configured) record; needs
        O(prometheus).
    type: list
    elements: str
requirements:
  - prometheus_client (the Python package), only for O(source=scrape) - its exposition parser
notes:
  - HTTP is done with the collection's standard-library HTTP layer; only the scrape source needs a library.
  - Every secret (tokens, passwords, credential headers, URL credentials) is masked in records, messages and the
    echoed module arguments.
  - Values in the evidence that JSON cannot hold are written as the strings C(NaN), C(+Inf) and C(-Inf).
seealso:
  - module: cleanwithsnapshot.release.readiness_probe
  - name: Argo Rollouts analysis
    description: The measurement, limit and phase model this module follows.
    link: https://argo-rollouts.readthedocs.io/en/stable/features/analysis/
"""

EXAMPLES = r"""
- name: Canary stage judged sequentially, counted from the stage's start in Prometheus (the canary role's defaults)
  cleanwithsnapshot.release.slo_analysis:
    prometheus:
      url: http://prometheus:9090
      variants:  # the raw counter series of each variant (the scrapes of /metrics and the health checks left out)
        canary: job="api-canary",route!~"/metrics|/healthz|/readyz|/healthz/backup"
        stable: job="clean-api",route!~"/metrics|/healthz|/readyz|/healthz/backup"
    require_targets: [clean-api, api-canary]
    defaults:
      judge: sequential
      false_fail_rate: 0.0005  # 1 % over the whole canary, split over 4 stages x 5 metrics
      false_pass_rate: 0.1
      interval: 10
      count: 30  # 300 s: the 30th look is final
    metrics:
      - {name: error_rate, kind: error_rate, variant: canary, condition: {op: le, value: 0.01}}
      - {name: availability, kind: availability, variant: canary, condition: {op: ge, value: 0.99}}
      - name: slow_share  # p95 300 ms read as at most 5 % slower than the 0.25 s bucket bound
        criterion: slo.latency_p95
        kind: slow_share
        boundary: 0.25
        variant: canary
        condition: {op: le, value: 0.05}
      - name: vs_stable_error_rate
        criterion: slo.vs_stable
        kind: error_rate
        variant: canary
        compare: {baseline_variant: stable, max_increase: 0.01}
  register: stage

- name: A soak round counted from the soak's start; only the last round is final
  cleanwithsnapshot.release.slo_analysis:
    prometheus:
      url: http://prometheus:9090
      variants: {stable: 'job="clean-api",route!="/metrics"'}
    since: "{{ soak_started }}"
    final_look: "{{ soak_round == soak_rounds }}"
    defaults: {judge: sequential, count: 1, interval: 60}
    metrics:
      - {name: error_rate, kind: error_rate, variant: stable, condition: {op: le, value: 0.01}}

- name: Canary step analysis with PromQL thresholds, from Prometheus
  cleanwithsnapshot.release.slo_analysis:
    prometheus:
      url: http://prometheus:9090
    require_targets: [clean-api, api-canary]
    require_rules: [sli:canary_error_rate5m, CanaryHighErrorRate, CanaryHighLatency]
    defaults:
      variant: canary
      interval: 60
      count: 5
      traffic:  # the canary's user requests of the last minute (its own /metrics scrapes left out)
        query: sum(increase(http_requests_total{job="api-canary",route!="/metrics"}[1m]))
        min: 20
    metrics:
      - name: error_rate  # CANARY_ERROR_RATE_THRESHOLD 1.0 %; the plain total: no traffic is NaN, not 0 %
        query: >-
          (sum(rate(http_requests_total{job="api-canary",route!="/metrics",status_class="5xx"}[1m])) or vector(0))
          / sum(rate(http_requests_total{job="api-canary",route!="/metrics"}[1m]))
        condition: {op: lt, value: 0.01}
      - name: latency_p95  # 300 ms for the canary
        query: >-
          histogram_quantile(0.95,
          sum by (le) (rate(http_request_latency_seconds_bucket{job="api-canary",route!="/metrics"}[1m])))
        condition: {op: lt, value: 0.3}
      - name: availability  # 99 %
        query: >-
          sum(rate(http_requests_total{job="api-canary",route!="/metrics",status_class=~"2xx|3xx"}[1m]))
          / sum(rate(http_requests_total{job="api-canary",route!="/metrics"}[1m]))
        condition: {op: ge, value: 0.99}
      - name: vs_stable  # p95 at most 50 % above stable's
        unit: seconds
        query: >-
          histogram_quantile(0.95,
          sum by (le) (rate(http_request_latency_seconds_bucket{job="api-canary",route!="/metrics"}[1m])))
        compare:
          baseline_query: >-
            histogram_quantile(0.95,
            sum by (le) (rate(http_request_latency_seconds_bucket{job="clean-api",route!="/metrics"}[1m])))
          max_increase_ratio: 0.5
  register: analysis

- name: The same judgement from the services' own /metrics, no Prometheus needed
  cleanwithsnapshot.release.slo_analysis:
    source: scrape
    scrape:
      targets:
        - {variant: canary, url: "http://10.0.0.6:8000/metrics", bearer_token: "{{ metrics_token }}"}
        - {variant: stable, url: "http://10.0.0.5:8000/metrics", bearer_token: "{{ metrics_token }}"}
    defaults: {variant: canary, interval: 30, count: 4, traffic: {min: 20}}
    metrics:
      - {name: error_rate, kind: error_rate, condition: {op: lt, value: 0.01}}
      - {name: availability, kind: availability, condition: {op: ge, value: 0.99}}
      - name: latency_p95  # reads: 500 ms
        kind: latency_quantile
        match: {method: GET}
        condition: {op: lt, value: 0.5}
      - name: vs_stable
        kind: error_rate
        compare: {baseline_variant: stable, max_increase: 0.005}

- name: Post-deploy soak - every point of the last 5 minutes, and a new metric tried in dry run
  cleanwithsnapshot.release.slo_analysis:
    prometheus:
      url: https://prometheus.example.com
      bearer_token: "{{ prometheus_token }}"
    deadline: 900
    metrics:
      - name: error_rate
        query: >-
          (sum(rate(http_requests_total{job="clean-api",route!="/metrics",status_class="5xx"}[1m])) or vector(0))
          / sum(rate(http_requests_total{job="clean-api",route!="/metrics"}[1m]))
        range: {seconds: 300, step: 15}
        condition: {op: le, value: 0.02}
        traffic: {query: 'sum(increase(http_requests_total{job="clean-api",route!="/metrics"}[5m]))', min: 100}
        count: 1
      - name: reads_p99
        criterion: slo.latency_p95
        query: histogram_quantile(0.99, sum by (le) (rate(http_request_latency_seconds_bucket{job="clean-api",method="GET"}[5m])))
        condition: {op: lt, value: 1.0}
        dry_run: true
        count: 1
"""

RETURN = r"""
records:
  description:
    - One check result per metric (criterion O(metrics[].criterion)), and first a C(monitoring.configured) record when
      O(require_targets) or O(require_rules) is given.
    - C(status) - C(pass) (Successful), C(fail) (Failed), C(error) (Inconclusive or Error, the check could not decide)
      or C(skipped) (stopped early because a blocking metric failed; C(evidence.skip_reason) says so).
  returned: always
  type: list
  elements: dict
  contains:
    criterion:
      description: The criterion id.
      type: str
      sample: slo.error_rate
    name:
      description: The metric's name (C(monitoring.configured) for that record).
      type: str
      sample: error_rate
    status:
      description: pass, fail, error or skipped.
      type: str
      sample: fail
    blocking:
      description: Whether the record gates the release (false for O(metrics[].dry_run)).
      type: bool
    summary:
      description: One line naming the metric, the variant, the value against its condition and the measurement.
      type: str
      sample: "slo.error_rate canary: 5.1 % > 1 % (needs < 1 %) at measurement 1 of 3"
    evidence:
      description:
        - C(outcome) (C(successful), C(failed), C(inconclusive), C(error) or C(stopped)), C(phase), C(metric) (query or
          kind, match, condition, compare, traffic, range, unit, interval), C(counts) (per outcome, C(measurements)
          taken, C(consecutive_errors)), C(limits), C(measurements) (see RV(analysis.metrics[].measurements)),
          C(dry_run), C(note) (a deadline that passed), C(skip_reason).
        - C(monitoring.configured) - C(jobs) (per job its targets and how many are up), C(rules) (per name the loaded
          rules), C(problems), C(error).
      type: dict
    duration_ms:
      description: Wall time of the analysis in milliseconds.
      type: float
status:
  description: The worst status among blocking records (error beats fail beats pass beats skipped).
  returned: always
  type: str
  sample: fail
counts:
  description: Number of records per status.
  returned: always
  type: dict
  sample: {pass: 2, fail: 1, error: 0, skipped: 1}
analysis:
  description: The analysis as Argo reports an AnalysisRun; null when no metric was given.
  returned: always
  type: dict
  contains:
    phase:
      description:
        - The worst phase of the blocking metrics (all metrics when none blocks) - C(Failed), C(Error),
          C(Inconclusive) or C(Successful). The C(monitoring.configured) record is apart.
      type: str
      sample: Failed
    stopped_by:
      description: The blocking metric whose failure stopped the call early, or null.
      type: str
    ticks:
      description: How many measurement rounds were run.
      type: int
    metrics:
      description: Per metric C(name), C(criterion), C(phase) (one of the above or C(Stopped)), C(blocking), C(dry_run)
        and C(measurements).
      type: list
      elements: dict
      contains:
        measurements:
          description:
            - Per measurement C(index), C(at) (epoch seconds), C(outcome) (C(continue) for an undecided look of the
              sequential judge), C(value) (NaN and Inf as strings), C(reason) (why it failed or could not decide) and
              what it came from - C(sample_time) and C(labels) of the Prometheus sample, C(points) of a range query,
              C(traffic), C(window_s) and C(baseline_requests) of a counted window, C(baseline), C(degradation) and
              C(degradation_ratio) of a comparison.
            - A look of the sequential judge - C(look), C(final), C(decision), C(bad) of C(total) requests, C(share),
              C(lower) (its anytime lower bound), C(upper) (the final look's upper bound), C(limit), C(needed) (clean
              requests a pass needs), C(p95) (evidence only, C(slow_share)), with O(metrics[].compare) C(baseline_bad),
              C(baseline_total), C(baseline_share) and the judge's C(allowed) shares; with Prometheus C(freshness),
              C(last_scrape) and C(fresh_wait_s) (how long the look waited for a scrape newer than itself).
          type: list
          elements: dict
          sample:
            - {index: 1, at: 1764696000.123, outcome: failed, value: 0.051, traffic: 412.0, window_s: 10.002,
               reason: "5.1 % > 1 % (needs < 1 %)"}
requests_sent:
  description: HTTP requests sent to Prometheus and the scrape targets (retries included).
  returned: always
  type: int
elapsed_ms:
  description: Wall time of the whole module call in milliseconds.
  returned: always
  type: float
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import metrics_analysis as ma
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import Stopwatch, exit_with_records
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.module_support import (
    api_connection_argument_spec,
    API_CONNECTION_CONSTRAINTS,
    SecretAwareModule,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.metrics_sources import (
    HAS_PROMETHEUS_CLIENT,
    PROMETHEUS_CLIENT_IMPORT_ERROR,
)


def _traffic_spec():
    return dict(query=dict(type="str"), min=dict(type="float", aliases=["min_requests"]))


def _per_metric_spec():
    """The settings a metric may take from ``defaults``: no defaults of their own here."""
    return dict(
        interval=dict(type="float"),
        count=dict(type="int"),
        failure_limit=dict(type="int"),
        inconclusive_limit=dict(type="int"),
        consecutive_error_limit=dict(type="int"),
        blocking=dict(type="bool"),
        dry_run=dict(type="bool"),
        variant=dict(type="str"),
        match=dict(type="dict"),
        quantile=dict(type="float"),
        traffic=dict(type="dict", options=_traffic_spec()),
        judge=dict(type="str", choices=list(ma.JUDGES)),
        false_fail_rate=dict(type="float"),
        false_pass_rate=dict(type="float", no_log=False),  # a probability, not a password
    )


def _metric_spec():
    spec = _per_metric_spec()
    spec.update(
        name=dict(type="str", required=True),
        criterion=dict(type="str"),
        query=dict(type="str"),
        range=dict(type="dict", options=dict(seconds=dict(type="float", required=True),
                                             step=dict(type="float", required=True))),
        kind=dict(type="str", choices=list(ma.KINDS)),
        boundary=dict(type="float"),
        unit=dict(type="str", choices=list(ma.UNITS)),
        condition=dict(type="dict", options=dict(op=dict(type="str", required=True),
                                                 value=dict(type="float", required=True))),
        compare=dict(type="dict", options=dict(
            baseline_query=dict(type="str"),
            baseline_variant=dict(type="str"),
            baseline_label=dict(type="str"),
            max_increase=dict(type="float"),
            max_increase_ratio=dict(type="float"),
            worse=dict(type="str", choices=["higher", "lower"]),
        ), mutually_exclusive=[["baseline_query", "baseline_variant"]],
            required_one_of=[["baseline_query", "baseline_variant"], ["max_increase", "max_increase_ratio"]]),
    )
    return spec


def _defaults_spec():
    spec = _per_metric_spec()
    for key in ("interval", "count", "failure_limit", "inconclusive_limit", "consecutive_error_limit", "blocking",
                "dry_run", "quantile", "judge", "false_fail_rate", "false_pass_rate"):
        spec[key] = dict(spec[key], default=ma.DEFAULTS[key])
    return spec


def argument_spec():
    return dict(
        source=dict(type="str", default="prometheus", choices=["prometheus", "scrape"]),
        prometheus=dict(type="dict", options=dict(
            api_connection_argument_spec(), headers=dict(type="dict", default={}), variants=dict(type="dict"),
            requests_metric=dict(type="str", default="http_requests_total"),
            latency_metric=dict(type="str", default="http_request_latency_seconds"),
            status_label=dict(type="str", default="status_class")), **API_CONNECTION_CONSTRAINTS),
        since=dict(type="str"),
        final_look=dict(type="bool", default=True),
        scrape=dict(type="dict", options=dict(
            targets=dict(type="list", elements="dict", required=True, options=dict(
                variant=dict(type="str", required=True),
                url=dict(type="str", required=True),
                bearer_token=dict(type="str", no_log=True),
                headers=dict(type="dict"),
            )),
            timeout=dict(type="float", default=10.0),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            requests_metric=dict(type="str", default="http_requests_total"),
            latency_metric=dict(type="str", default="http_request_latency_seconds"),
            status_label=dict(type="str", default="status_class"),
            route_label=dict(type="str", default="route"),
            exclude_routes=dict(type="list", elements="str", default=["/metrics"]),
        )),
        metrics=dict(type="list", elements="dict", default=[], options=_metric_spec(),
                     mutually_exclusive=[["query", "kind"], ["range", "compare"]],
                     required_one_of=[["condition", "compare"]]),
        defaults=dict(type="dict", default={}, options=_defaults_spec()),
        deadline=dict(type="float", default=600.0),
        require_targets=dict(type="list", elements="str"),
        require_rules=dict(type="list", elements="str"),
    )


def main():
    module = SecretAwareModule(
        argument_spec=argument_spec(), supports_check_mode=True, secret_collector=ma.collect_secrets,
        required_if=[("source", "prometheus", ["prometheus"]), ("source", "scrape", ["scrape"])],
        required_by={"require_targets": "prometheus", "require_rules": "prometheus"},
    )
    watch = Stopwatch()
    try:
        plan = ma.plan_analysis(module.params)
    except ma.AnalysisInputError as exc:
        module.fail_redacted(str(exc))
    if plan["source"] == "scrape" and not HAS_PROMETHEUS_CLIENT:
        module.fail_json(msg=missing_required_lib("prometheus_client (source=scrape parses /metrics with it)"),
                         exception=PROMETHEUS_CLIENT_IMPORT_ERROR)
    result = ma.run_analysis(plan, module.secrets)
    exit_with_records(module, module.secrets.value(result["records"]), changed=False,
                      analysis=module.secrets.value(result["analysis"]), requests_sent=result["requests"],
                      elapsed_ms=round(watch.elapsed_ms, 1))


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: readiness_probe
short_description: Run many HTTP readiness, smoke, header and TLS probes concurrently in one call
version_added: 0.1.0
description:
  - Runs a list of HTTP probes against a service, concurrently, in ONE module call, and returns one check
    result record per probe (plus separate records for the C(migrations.readyz) and C(jobs.heartbeat)
    criteria of a C(readyz) probe). The records are data for the release gate; a failing probe does not
    fail the task.
  - Per probe - URL, method, headers, body, expected status(es), JSON assertions (JMESPath with typed
    comparison, each reported with path, expected and actual), required response headers, a latency
    budget, TLS verification with a CA file and client certificates.
  - Built-in probe kinds carry defaults that work on the real service, so a role needs little data -
    C(healthz), C(readyz), C(backup), C(security_headers), C(tls), C(https_redirect); C(custom) takes
    everything from its options.
  - O(mode=check) (the default) answers "is it healthy now", requiring O(consecutive_successes) passing
    evaluations in a row (a flapping service fails). O(mode=wait) polls until every probe passes or
    O(deadline) is reached (for deploys).
  - The order of sending - the precondition probes first and alone (by default the C(healthz) probe, the liveness
    check); then the blocking probes together with the O(admin) matrix; then the probes marked
    O(probes[].after_blocking) (by default the advisory ones, O(probes[].blocking=false)), so that a heavy advisory
    request such as the first C(/openapi.json) of a cold service cannot stall the blocking ones.
  - When a precondition gets no answer that says the service is not there (refused, accepted and never answered,
    connect timeout, DNS, reset), nothing else is sent - neither the other probes nor the admin matrix - and their
    records are C(error) records saying they were not run and why. The precondition's own record is C(fail) when the
    service is at fault - it refuses connections, or it accepts them and never answers (hung) - and C(error) when the
    checking side cannot tell (connect timeout, DNS, TLS).
  - Any other probe without an answer (refused, timeout, DNS, TLS handshake) or with a persistent 429 gives an
    C(error) record - the check could not decide, and the gate treats that as NO-GO.
  - A latency budget (O(max_latency_ms)) fails only when every answer is over it - an answer whose one failed check is
    the latency is measured again, up to O(latency_samples) answers (never for a probe that may write).
  - Write probes (O(probes[].write), for example POST /v1/leads which creates a lead) are only planned in
    check mode - a C(skipped) record says so. Read-only POSTs such as /v1/estimate set O(probes[].write=false)
    and run in check mode too.
author:
  - CleanWithSnapshot release engineering (!UNKNOWN)
extends_documentation_fragment:
  - cleanwithsnapshot.release.http_client
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Read-only probes run for real; write probes are reported as planned and not sent.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  probes:
    description:
      - The probes to run. Names must be unique.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - The probe's name, the record's C(name). Defaults to the kind (C(custom) needs a name or a path).
        type: str
      kind:
        description:
          - C(healthz) - GET /healthz, 200 with C(status == "ok") (criterion C(health.liveness)).
          - C(readyz) - GET /readyz, 200, C(ok == true) and every C(checks[].ok) true; each failing sub-check
            is named. Also emits C(<name>:migrations) (criterion C(migrations.readyz), the migrations check's
            C(detail.migrations_current) true) and C(<name>:jobs) (criterion C(jobs.heartbeat), the jobs check
            ok and C(detail.age_seconds) below C(detail.threshold_seconds)). The jobs check's C(detail.enabled) is the
            service's heartbeat check; C(detail.jobs_enabled) (the service's C(JOBS_ENABLED) flag - false when an
            external runner runs the jobs) is reported in the evidence and never gated on.
          - C(backup) - GET /healthz/backup, 200 with C(backup_ok) true and C(age_seconds) below
            O(probes[].max_age_seconds) (criterion C(backup.freshness)).
          - C(security_headers) - GET /healthz carries C(X-Content-Type-Options) C(nosniff),
            C(X-Frame-Options) C(DENY) and C(Referrer-Policy) C(no-referrer); C(Strict-Transport-Security) too when
            the URL is https (criterion C(headers.security)).
          - C(tls) - the certificate of an https URL - verified, hostname matching, at least
            O(probes[].min_days_valid) days to expiry, not self-signed unless O(probes[].ca_path) or O(ca_path) is
            given (criterion C(tls.certificate)).
          - C(https_redirect) - the http:// URL answers 301 or 308 with a C(Location) on https:// (criterion
            C(tls.redirect)). Without O(probes[].url) the base URL is used with its scheme set to http.
          - C(custom) - everything from the options; O(probes[].criterion) is required.
        type: str
        choices: [healthz, readyz, backup, security_headers, tls, https_redirect, custom]
        default: custom
      criterion:
        description:
          - The criterion id of the record (see the collection's criteria list). Defaults per kind.
        type: str
      url:
        description:
          - The absolute URL. Mutually exclusive with O(probes[].path).
        type: str
      path:
        description:
          - A path joined to O(base_url). Defaults per kind.
        type: str
      method:
        description: The HTTP method.
        type: str
        default: GET
      headers:
        description:
          - Request headers, merged over the module's O(headers). Credential headers are never printed.
        type: dict
      body:
        description: A raw request body. Mutually exclusive with O(probes[].json_body).
        type: str
      json_body:
        description:
          - A request body sent as JSON (C(Content-Type) application/json unless set in headers).
        type: raw
      url_username:
        description: User name for HTTP Basic authentication.
        type: str
      url_password:
        description: Password for HTTP Basic authentication. Never printed.
        type: str
      bearer_token:
        description:
          - A token sent in the C(Authorization) header as C(Bearer <token>) (for example the metrics token). Never printed.
        type: str
      status_code:
        description:
          - The expected status, or a list of accepted statuses. Defaults per kind (200; 301/308 for C(https_redirect)).
        type: raw
      assertions:
        description:
          - Assertions on the JSON body. Each is reported as C({path, op, expected, actual, ok}).
          - Comparison is typed - a number never equals a string and C(true) never equals C(1); such a check fails
            with a C(note) saying why.
        type: list
        elements: dict
        suboptions:
          path:
            description: A JMESPath expression (plain dotted paths work without the jmespath library).
            type: str
            required: true
          op:
            description:
              - C(==), C(!=), C(<), C(<=), C(>), C(>=) - typed comparison.
              - C(in) - the actual value is one of O(probes[].assertions[].value) (a list).
              - C(contains) - an array holds the value, a string holds the substring, an object has the key.
              - C(exists) - the path yields a non-null value (O(probes[].assertions[].value) true, the default) or
                nothing (false).
              - C(type) - one of C(string), C(number), C(integer), C(boolean), C(array), C(object), C(null).
              - C(regex) - a string matching the pattern (Python C(re.search)).
            type: str
            default: '=='
          value:
            description: The expected value (typed as given in YAML).
            type: raw
          expected_path:
            description:
              - Take the expected value from this JMESPath expression on the same body instead of
                O(probes[].assertions[].value) (for example a threshold the service reports).
            type: str
      required_headers:
        description:
          - Response headers that must be present; C(value) compares case-insensitively, C(regex) searches.
          - C(present=false) requires the header to be absent.
        type: list
        elements: dict
        suboptions:
          name:
            description: The header name (case-insensitive).
            type: str
            required: true
          value:
            description: The expected value.
            type: str
          regex:
            description: A pattern the value must match.
            type: str
          present:
            description: Whether the header must be present.
            type: bool
            default: true
      content_type:
        description: The expected media type of the answer, for example C(application/json) or C(text/csv).
        type: str
      max_latency_ms:
        description:
          - The latency budget of the answer in milliseconds; slower is a failed check. Overrides O(max_latency_ms).
        type: float
      timeout:
        description:
          - Overrides O(timeout) for this probe (a short one on the liveness precondition bounds the time to a NO-GO
            for a hung service).
        type: float
      retries:
        description: Overrides O(retries) for this probe.
        type: int
      precondition:
        description:
          - Send this probe first and alone; when it gets no answer that says the service is not there, nothing else is
            sent (see the description). Defaults to true for C(healthz), false otherwise.
          - Not with O(probes[].body_from) or O(probes[].after_blocking).
        type: bool
      after_blocking:
        description:
          - Send this probe only once every blocking probe and the admin matrix are done - for heavy or advisory
            requests (C(/openapi.json), C(/docs)) that may stall a cold service. Defaults to true for advisory probes
            (O(probes[].blocking=false)), false otherwise.
          - A probe cannot take its body (O(probes[].body_from)) from a probe sent after it.
        type: bool
      validate_certs:
        description: Overrides O(validate_certs) for this probe.
        type: bool
      ca_path:
        description: Overrides O(ca_path) for this probe.
        type: path
      client_cert:
        description: Overrides O(client_cert) for this probe.
        type: path
      client_key:
        description: Overrides O(client_key) for this probe.
        type: path
      follow_redirects:
        description:
          - Overrides O(follow_redirects) for this probe; C(https_redirect) probes never follow.
        type: str
        choices: [none, safe, all]
      blocking:
        description:
          - Whether the record gates the release. Advisory criteria (C(smoke.docs), C(metrics.endpoint)) set false.
        type: bool
        default: true
      write:
        description:
          - The probe changes data (POST /v1/leads creates a lead). Write probes are not sent in check mode.
          - Defaults to true for POST, PUT, PATCH and DELETE and false otherwise; set false for read-only POSTs
            such as /v1/estimate.
        type: bool
      required_checks:
        description:
          - C(readyz) - names of C(checks[]) entries that must be present.
        type: list
        elements: str
        default: [db, migrations]
      migrations_check:
        description: C(readyz) - the name of the migrations entry in C(checks[]).
        type: str
        default: migrations
      jobs_check:
        description: C(readyz) - the name of the jobs heartbeat entry in C(checks[]).
        type: str
        default: jobs
      heartbeat_max_age_seconds:
        description:
          - C(readyz) - the heartbeat age limit; defaults to the C(threshold_seconds) the service reports.
        type: float
      allow_heartbeat_disabled:
        description:
          - C(readyz) - pass C(jobs.heartbeat) when the service reports the heartbeat check as disabled
            (C(detail.enabled) false). Off by default, because then nothing shows that jobs run.
        type: bool
        default: false
      split_criteria:
        description:
          - C(readyz) - emit the separate C(migrations.readyz) and C(jobs.heartbeat) records.
        type: bool
        default: true
      max_age_seconds:
        description:
          - C(backup) - the largest accepted C(age_seconds) of the last backup (the service's own limit is 26 hours).
        type: float
        default: 93600
      min_days_valid:
        description: C(tls) - the least number of days the certificate must still be valid.
        type: int
        default: 14
      server_hostname:
        description: C(tls) - the name to verify the certificate for, when it differs from the URL's host.
        type: str
      hsts:
        description:
          - C(security_headers) - require C(Strict-Transport-Security). Defaults to true for https URLs only
            (on the real service HSTS comes from the reverse proxy).
        type: bool
      body_from:
        description:
          - Fill keys of this probe's O(probes[].json_body) (an object, or empty when not set) from the JSON answer of
            another probe of the same call - for example the smoke lead's C(estimate_snapshot), which the real
            service wants to be a whole C(/v1/estimate) answer, from the estimate probe's own answer. A value taken
            replaces the key's value in O(probes[].json_body).
          - The probe is sent once its sources have finished (and passed); probes without O(probes[].body_from), the
            sources among them, still run at the same time.
          - A source that is not a probe of this call, a cycle of sources, or a source that did not pass (failed, could
            not decide, was skipped) or has nothing at O(probes[].body_from[].path) makes this probe an C(error) record
            that names the source and the reason - never a pass - and the probe is not sent.
          - Not with O(probes[].body). In check mode a write probe is planned as usual, without waiting for its sources.
        type: list
        elements: dict
        suboptions:
          probe:
            description: The name of the source probe (O(probes[].name), or its kind for a built-in kind).
            type: str
            required: true
          key:
            description: The top-level key of O(probes[].json_body) to set.
            type: str
            required: true
          path:
            description:
              - A JMESPath expression selecting the part of the source's JSON answer to take (plain dotted paths work
                without the jmespath library). Not set, the whole answer is taken.
            type: str
  headers:
    description:
      - Headers sent with every probe (a probe's own O(probes[].headers) win).
    type: dict
    default: {}
  mode:
    description:
      - C(check) - evaluate each probe O(consecutive_successes) times in a row; the first failing evaluation decides.
      - C(wait) - poll each probe every O(interval) seconds until it passes O(consecutive_successes) times in a row
        or O(deadline) is reached.
    type: str
    choices: [check, wait]
    default: check
  consecutive_successes:
    description: Passing evaluations in a row a probe needs (more than 1 catches a flapping service).
    type: int
    default: 1
  interval:
    description: Seconds between evaluations of one probe (polling in O(mode=wait), repeats in O(mode=check)).
    type: float
    default: 1
  follow_redirects:
    description: Which redirects to follow (C(safe) follows them for GET and HEAD only).
    type: str
    choices: [none, safe, all]
    default: safe
  max_latency_ms:
    description:
      - The latency budget of every probe in milliseconds (a probe's own O(probes[].max_latency_ms) wins). A slower
        answer fails its probe's criterion, so a service that answers but hangs is not a GO. Not set, no budget.
    type: float
  latency_samples:
    description:
      - How many answers at most judge a latency budget - an answer over its budget (and failing nothing else) is
        measured again, and the budget fails only when every answer is over it. V(1) judges the first answer alone.
      - Probes that may write are never sent twice for this; their first answer is judged.
    type: int
    default: 3
  admin:
    description:
      - Also check the authorization matrix of the admin endpoints, in the same call and at the same time as the probes
        - the checks of M(cleanwithsnapshot.release.basic_auth_endpoint), with the same records (criteria
        C(auth.anonymous), C(auth.wrong_password), C(auth.roles), each endpoint's own criterion, C(jobs.status)).
      - Takes that module's options - C(roles) (required), C(endpoints) (required), C(wrong_password_role),
        C(extra_headers), C(anonymous_extra_headers), C(read_only_mode), C(read_only_criterion), C(allow_writes),
        C(jobs_status), C(deadline) (default 120, never longer than what is left of O(deadline)) and C(concurrency)
        (default 4) - with the same meaning and validation. The HTTP client options (O(base_url), O(timeout), O(retries), TLS) are this module's,
        O(concurrency) bounds the requests in flight of the probes and the matrix together (the service's own
        connection pool is finite), and both spend one request budget (O(rate_limit)).
      - One module task instead of two is the point - each module task costs a release check several hundred
        milliseconds of Ansible's own work.
      - Only with O(mode=check). The role passwords are never printed.
    type: dict
requirements:
  - jmespath, only for assertion paths that are more than a plain dotted path
seealso:
  - module: cleanwithsnapshot.release.basic_auth_endpoint
"""

EXAMPLES = r"""
- name: Health, readiness (with migrations and job heartbeat), backup freshness and security headers
  cleanwithsnapshot.release.readiness_probe:
    base_url: "{{ api_base_url }}"
    probes:
      - kind: healthz
      - kind: readyz
      - kind: backup
      - kind: security_headers
  register: health

- name: Health probes and the admin authorization matrix in one call
  cleanwithsnapshot.release.readiness_probe:
    base_url: "{{ api_base_url }}"
    probes:
      - kind: healthz
      - kind: readyz
    admin:
      roles:
        admin: {username: "{{ admin_user }}", password: "{{ admin_password }}"}
        viewer: {username: "{{ viewer_user }}", password: "{{ viewer_password }}"}
      endpoints:
        - name: export_dlq
          criterion: admin.export_dlq
          path: /v1/admin/export-dead-letter?limit=1
          expect: {admin: 200, viewer: 200}
          assertions:
            - {path: total, op: type, value: integer}
      jobs_status:
        max_age_seconds: 900

- name: Wait for the service after a deploy (two passing polls in a row, at most 3 minutes)
  cleanwithsnapshot.release.readiness_probe:
    base_url: http://127.0.0.1:8000
    mode: wait
    deadline: 180
    interval: 2
    consecutive_successes: 2
    probes:
      - kind: readyz

- name: Smoke calls, TLS and the HTTP to HTTPS redirect
  cleanwithsnapshot.release.readiness_probe:
    base_url: https://api.example.com
    probes:
      - name: estimate
        criterion: smoke.estimate
        path: /v1/estimate
        method: POST
        write: false  # computes a price, stores nothing
        json_body: {beds: 2, baths: 1.5, cleaning_type: deep}
        assertions:
          - {path: pricing_config_id, op: type, value: string}
          - {path: total_before_tax, op: '>', value: 0}
      - name: lead
        criterion: smoke.lead
        path: /v1/leads
        method: POST  # a write: planned only in check mode
        json_body: "{{ lead_payload }}"
        body_from:  # sent after the estimate probe: its whole answer becomes the lead's estimate_snapshot
          - {probe: estimate, key: estimate_snapshot}
        status_code: 201
        assertions:
          - {path: lead_id, op: exists}
      - name: validation
        criterion: smoke.validation
        path: /v1/leads
        method: POST
        write: false  # an invalid body is rejected before anything is stored
        json_body: {}
        status_code: 422
        content_type: application/problem+json
      - name: openapi
        criterion: smoke.docs
        path: /openapi.json
        blocking: false
        assertions:
          - {path: openapi, op: regex, value: '^3\.'}
      - name: metrics
        criterion: metrics.endpoint
        path: /metrics
        bearer_token: "{{ metrics_token }}"
        blocking: false
      - kind: tls
        min_days_valid: 21
      - kind: https_redirect
      - name: readyz-jobs-fresh
        criterion: jobs.heartbeat
        path: /readyz
        assertions:
          - path: "checks[?name=='jobs'] | [0].detail.age_seconds"
            op: '<'
            expected_path: "checks[?name=='jobs'] | [0].detail.threshold_seconds"
"""

RETURN = r"""
records:
  description:
    - One check result per probe, plus C(<name>:migrations) and C(<name>:jobs) for a C(readyz) probe.
    - C(status) is C(pass), C(fail), C(error) (no answer, persistent 429, could not decide) or C(skipped)
      (a write probe in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    criterion:
      description: The criterion id.
      type: str
      sample: health.readiness
    name:
      description: The probe's name.
      type: str
      sample: readyz
    status:
      description: pass, fail, error or skipped.
      type: str
      sample: fail
    blocking:
      description: Whether the record gates the release.
      type: bool
    summary:
      description: One line naming the probe, what was asked and what failed.
      type: str
      sample: "readyz: GET http://127.0.0.1:8000/readyz: 2 of 6 checks failed: status_code in [200] (actual 503); failing checks: jobs (job heartbeat missing)"
    evidence:
      description:
        - C(url) (credentials masked), C(method), C(status_code), C(latency_ms), C(attempts), C(checks) (count),
          C(failed) (the failed checks as C({path, op, expected, actual, ok, note})), C(body_excerpt) (on failure,
          redacted), C(attempt_log), C(mode), C(evaluations), C(failing_checks) (readyz), C(certificate) (tls),
          C(error) (no answer, or why a probe with O(probes[].body_from) was not sent), C(body_from) (its sources).
      type: dict
    duration_ms:
      description: Wall time of the probe in milliseconds.
      type: float
status:
  description: The worst status among blocking records (error beats fail beats pass beats skipped).
  returned: always
  type: str
  sample: pass
counts:
  description: Number of records per status.
  returned: always
  type: dict
  sample: {pass: 5, fail: 0, error: 0, skipped: 1}
elapsed_ms:
  description: Wall time of the whole module call in milliseconds.
  returned: always
  type: float
admin_requests_sent:
  description: How many HTTP requests the admin matrix sent (retries included).
  returned: when O(admin) is given
  type: int
requests_sent:
  description:
    - How many HTTP requests this call sent in all - the probes', re-measures and retries included, and the admin
      matrix's. Requests not sent (after a precondition got no answer, or past the deadline) do not count.
  returned: always
  type: int
rate_limit:
  description:
    - How this call spent the service's request budget (O(rate_limit)) - C(origin), C(requests), C(window), C(margin),
      C(budget) (requests less margin), C(history_in_window) (earlier sends still inside the window, from the
      ledger), C(counted) and C(exempt) (requests of this call), C(waited_s) (the longest wait of one request for a slot)
      and C(waited_requests) (how many waited), C(throttled) (429s that arrived anyway and were waited out).
    - C(ledger) - the controller's ledger entry used (C(entry), C(history_in_window), C(waited_for_lock_s)), when the
      action plugin kept one.
  returned: always
  type: dict
  sample: {origin: "https://api.example.com:443", requests: 30, window: 60.0, margin: 2, budget: 28, history_in_window: 0,
           counted: 21, exempt: 3, waited_s: 0.0, waited_requests: 0, throttled: 0}
"""

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import assertions as asserts
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_transport import FOLLOW_REDIRECTS
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.module_support import (
    SecretAwareModule,
    http_common_argument_spec,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.probes import KINDS, collect_secrets, run


def argument_spec():
    spec = http_common_argument_spec()
    spec.update(
        probes=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str"),
            kind=dict(type="str", default="custom", choices=KINDS),
            criterion=dict(type="str"),
            url=dict(type="str"),
            path=dict(type="str"),
            method=dict(type="str", default="GET"),
            headers=dict(type="dict"),
            body=dict(type="str"),
            json_body=dict(type="raw"),
            url_username=dict(type="str"),
            url_password=dict(type="str", no_log=True),
            bearer_token=dict(type="str", no_log=True),
            status_code=dict(type="raw"),
            assertions=asserts.assertion_argument_spec(),
            required_headers=dict(type="list", elements="dict", options=dict(
                name=dict(type="str", required=True),
                value=dict(type="str"),
                regex=dict(type="str"),
                present=dict(type="bool", default=True),
            )),
            content_type=dict(type="str"),
            max_latency_ms=dict(type="float"),
            timeout=dict(type="float"),
            retries=dict(type="int"),
            precondition=dict(type="bool"),
            after_blocking=dict(type="bool"),
            validate_certs=dict(type="bool"),
            ca_path=dict(type="path"),
            client_cert=dict(type="path"),
            client_key=dict(type="path"),
            follow_redirects=dict(type="str", choices=FOLLOW_REDIRECTS),
            blocking=dict(type="bool", default=True),
            write=dict(type="bool"),
            required_checks=dict(type="list", elements="str", default=["db", "migrations"]),
            migrations_check=dict(type="str", default="migrations"),
            jobs_check=dict(type="str", default="jobs"),
            heartbeat_max_age_seconds=dict(type="float"),
            allow_heartbeat_disabled=dict(type="bool", default=False),
            split_criteria=dict(type="bool", default=True),
            max_age_seconds=dict(type="float", default=93600),
            min_days_valid=dict(type="int", default=14),
            server_hostname=dict(type="str"),
            hsts=dict(type="bool"),
            body_from=dict(type="list", elements="dict", options=dict(
                probe=dict(type="str", required=True),
                key=dict(type="str", required=True, no_log=False),
                path=dict(type="str"),
            )),
        ), mutually_exclusive=[["url", "path"], ["body", "json_body"], ["bearer_token", "url_password"]],
            required_if=[["kind", "custom", ["url", "path"], True]],
            required_by={"url_password": "url_username"}),
        headers=dict(type="dict", default={}),
        mode=dict(type="str", default="check", choices=["check", "wait"]),
        consecutive_successes=dict(type="int", default=1),
        interval=dict(type="float", default=1.0),
        follow_redirects=dict(type="str", default="safe", choices=FOLLOW_REDIRECTS),
        max_latency_ms=dict(type="float"),
        latency_samples=dict(type="int", default=3),
        admin=dict(type="dict"),
    )
    return spec


def main():
    module = SecretAwareModule(argument_spec=argument_spec(), supports_check_mode=True, secret_collector=collect_secrets)
    run(module)


if __name__ == "__main__":
    main()

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
version_added: 1.0.0
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
  - A probe without an answer (refused, timeout, DNS, TLS handshake) or a persistent 429 gives an C(error)
    record - the check could not decide, and the gate treats that as NO-GO.
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
        description: Overrides O(timeout) for this probe.
        type: float
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
  admin:
    description:
      - Also check the authorization matrix of the admin endpoints, in the same call and at the same time as the probes
        - the checks of M(cleanwithsnapshot.release.basic_auth_endpoint), with the same records (criteria
        C(auth.anonymous), C(auth.wrong_password), C(auth.roles), each endpoint's own criterion, C(jobs.status)).
      - Takes that module's options - C(roles) (required), C(endpoints) (required), C(wrong_password_role),
        C(extra_headers), C(anonymous_extra_headers), C(read_only_mode), C(read_only_criterion), C(allow_writes),
        C(jobs_status), C(deadline) (default 120) and C(concurrency) (default 4) - with the same meaning and
        validation. The HTTP client options (O(base_url), O(timeout), O(retries), TLS) are this module's,
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

import copy
import json
import re
import threading
from urllib.parse import urlsplit

from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    CRITERION_PATTERN,
    ERROR,
    FAIL,
    PASS,
    SKIPPED,
    Stopwatch,
    exit_with_records,
    make_record,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import assertions as asserts
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import probe_sources
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.auth_matrix import (
    InputError as MatrixInputError,
    MatrixRun,
    collect_matrix_secrets,
    matrix_argument_spec,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.rate_budget import RequestBudget
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_errors import TransportError
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_transport import (
    FOLLOW_REDIRECTS,
    HttpClient,
    RequestSpec,
    run_concurrently,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.module_support import (
    collect_common_secrets,
    http_common_argument_spec,
    http_params_error,
    join_url,
    retry_policy_from,
    SecretAwareModule,
    url_error,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import (
    basic_auth_header,
    is_sensitive_header,
    safe_url,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.tls import inspect_tls
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.waiter import Deadline, Waiter

KINDS = ["healthz", "readyz", "backup", "security_headers", "tls", "https_redirect", "custom"]
KIND_DEFAULTS = {
    "healthz": {"path": "/healthz", "criterion": "health.liveness", "status_code": [200]},
    "readyz": {"path": "/readyz", "criterion": "health.readiness", "status_code": [200]},
    "backup": {"path": "/healthz/backup", "criterion": "backup.freshness", "status_code": [200]},
    "security_headers": {"path": "/healthz", "criterion": "headers.security", "status_code": [200]},
    "tls": {"path": "/", "criterion": "tls.certificate", "status_code": []},
    "https_redirect": {"path": "/", "criterion": "tls.redirect", "status_code": [301, 308]},
    "custom": {"path": None, "criterion": None, "status_code": [200]},
}
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
SECURITY_HEADERS = [
    {"name": "X-Content-Type-Options", "value": "nosniff"},
    {"name": "X-Frame-Options", "value": "DENY"},
    {"name": "Referrer-Policy", "value": "no-referrer"},
]
HSTS_HEADER = {"name": "Strict-Transport-Security", "regex": r"max-age=[1-9][0-9]*"}
MAX_SUMMARY_FAILURES = 4
BODY_EXCERPT_CHARS = 600


class ProbeInputError(ValueError):
    pass


# --------------------------------------------------------------------------------------------------
# Planning: options -> validated probe plans
# --------------------------------------------------------------------------------------------------

def collect_secrets(params, secrets):
    collect_common_secrets(params, secrets)
    secrets.add_headers(params.get("headers") or {})
    collect_matrix_secrets(params.get("admin"), secrets)
    for probe in params.get("probes") or []:
        if not isinstance(probe, dict):
            continue
        secrets.add_url(probe.get("url"))
        secrets.add_headers(probe.get("headers") or {})
        if probe.get("url_password"):
            secrets.add_basic(probe.get("url_username"), probe["url_password"])
        if probe.get("bearer_token"):
            secrets.add(probe["bearer_token"])
            secrets.add("Bearer %s" % probe["bearer_token"])


def _statuses(value, where):
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    result = []
    for item in items:
        try:
            code = int(item)
        except (TypeError, ValueError):
            raise ProbeInputError("%s.status_code must be an integer or a list of integers, got %r" % (where, item))
        if isinstance(item, bool) or str(item).strip() != str(code) or not 100 <= code <= 599:
            raise ProbeInputError("%s.status_code %r is not an HTTP status (100-599)" % (where, item))
        result.append(code)
    if not result:
        raise ProbeInputError("%s.status_code must not be empty" % where)
    return result


def _http_url(url):
    return re.sub(r"^https://", "http://", url, flags=re.IGNORECASE)


def plan_probe(index, probe, params):
    kind = probe.get("kind") or "custom"
    defaults = KIND_DEFAULTS[kind]
    name = probe.get("name") or (kind if kind != "custom" else None)
    if not name:
        name = probe.get("path") or probe.get("url")
    where = "probes[%d]" % index if not name else "probes[%d] (name '%s')" % (index, name)
    if not name:
        raise ProbeInputError("%s: name is required for a custom probe without path or url" % where)
    criterion = probe.get("criterion") or defaults["criterion"]
    if not criterion:
        raise ProbeInputError("%s: criterion is required for kind custom" % where)
    if not CRITERION_PATTERN.match(criterion):
        raise ProbeInputError("%s.criterion %r is not a criterion id like 'health.readiness'" % (where, criterion))
    if probe.get("url") and probe.get("path"):
        raise ProbeInputError("%s: url and path are mutually exclusive" % where)
    if probe.get("body") is not None and probe.get("json_body") is not None:
        raise ProbeInputError("%s: body and json_body are mutually exclusive" % where)
    if probe.get("url_password") and not probe.get("url_username"):
        raise ProbeInputError("%s: url_password needs url_username" % where)
    if probe.get("bearer_token") and probe.get("url_password"):
        raise ProbeInputError("%s: bearer_token and url_username/url_password are mutually exclusive" % where)

    base_url = params.get("base_url")
    if probe.get("url"):
        url = probe["url"]
    elif kind == "https_redirect" and base_url:
        url = join_url(_http_url(base_url), probe.get("path") or defaults["path"])
    elif base_url:
        url = join_url(base_url, probe.get("path") or defaults["path"])
    else:
        raise ProbeInputError("%s: url is required when base_url is not set" % where)
    if kind == "custom" and not probe.get("url") and not probe.get("path"):
        raise ProbeInputError("%s: a custom probe needs path or url" % where)
    problem = url_error(url)
    if problem:
        raise ProbeInputError("%s.url: %s" % (where, problem))
    scheme = url.split(":", 1)[0].lower()
    if kind == "tls" and scheme != "https":
        raise ProbeInputError("%s: kind tls needs an https:// URL, got %s" % (where, safe_url(url)))
    if kind == "https_redirect" and scheme != "http":
        raise ProbeInputError("%s: kind https_redirect needs an http:// URL, got %s" % (where, safe_url(url)))

    method = (probe.get("method") or "GET").upper()
    if not re.match(r"^[A-Z]+$", method):
        raise ProbeInputError("%s.method %r is not an HTTP method" % (where, probe.get("method")))
    statuses = _statuses(probe.get("status_code"), where) or list(defaults["status_code"])
    for name_key in ("timeout", "max_latency_ms"):
        if probe.get(name_key) is not None and not probe[name_key] > 0:
            raise ProbeInputError("%s.%s must be greater than 0, got %s" % (where, name_key, probe[name_key]))
    if probe.get("min_days_valid") is not None and probe["min_days_valid"] < 0:
        raise ProbeInputError("%s.min_days_valid must be 0 or more" % where)
    if probe.get("max_age_seconds") is not None and not probe["max_age_seconds"] > 0:
        raise ProbeInputError("%s.max_age_seconds must be greater than 0" % where)
    if probe.get("heartbeat_max_age_seconds") is not None and not probe["heartbeat_max_age_seconds"] > 0:
        raise ProbeInputError("%s.heartbeat_max_age_seconds must be greater than 0" % where)
    if probe.get("client_key") and not (probe.get("client_cert") or params.get("client_cert")):
        raise ProbeInputError("%s.client_key needs client_cert" % where)

    try:
        checks = asserts.normalize_all(probe.get("assertions"), "%s.assertions" % where)
        header_specs = list(probe.get("required_headers") or [])
        if kind == "security_headers":
            header_specs = [dict(spec) for spec in SECURITY_HEADERS] + header_specs
            hsts = probe.get("hsts")
            if hsts is None:
                hsts = scheme == "https"
            if hsts:
                header_specs.append(dict(HSTS_HEADER))
        if kind == "https_redirect":
            header_specs.append({"name": "Location", "regex": r"^https://"})
        header_checks = [asserts.normalize_header(spec, "%s.required_headers[%d]" % (where, i))
                         for i, spec in enumerate(header_specs)]
    except asserts.AssertionSpecError as exc:
        raise ProbeInputError(str(exc))

    try:
        body_from = probe_sources.parse(probe.get("body_from"), where, probe.get("body") is not None,
                                        probe.get("json_body"))
    except probe_sources.SourceSpecError as exc:
        raise ProbeInputError(str(exc))

    headers = dict(params.get("headers") or {})
    headers.update(probe.get("headers") or {})
    body = probe.get("body")
    if body_from and not any(key.lower() == "content-type" for key in headers):
        headers["Content-Type"] = "application/json"
    if probe.get("json_body") is not None:
        try:
            body = json.dumps(probe["json_body"])
        except (TypeError, ValueError) as exc:
            raise ProbeInputError("%s.json_body cannot be encoded as JSON: %s" % (where, exc))
        if not any(key.lower() == "content-type" for key in headers):
            headers["Content-Type"] = "application/json"
    if probe.get("url_username"):
        headers["Authorization"] = to_text(basic_auth_header(probe["url_username"], probe.get("url_password") or ""))
    if probe.get("bearer_token"):
        headers["Authorization"] = "Bearer %s" % probe["bearer_token"]
    if kind in ("healthz", "readyz", "backup") and not any(key.lower() == "accept" for key in headers):
        headers["Accept"] = "application/json"

    write = probe.get("write")
    if write is None:
        write = method in WRITE_METHODS
    follow = "none" if kind == "https_redirect" else (probe.get("follow_redirects") or params.get("follow_redirects") or "safe")

    def pick(key):
        return probe.get(key) if probe.get(key) is not None else params.get(key)

    spec = RequestSpec(url, method=method, headers=headers, body=body, timeout=pick("timeout"),
                       connect_timeout=params.get("connect_timeout"), validate_certs=pick("validate_certs"),
                       ca_path=pick("ca_path"), client_cert=pick("client_cert"), client_key=pick("client_key"),
                       follow_redirects=follow, use_proxy=params.get("use_proxy"), idempotent=not write)
    return {
        "index": index,
        "where": where,
        "name": name,
        "kind": kind,
        "criterion": criterion,
        "blocking": probe.get("blocking") if probe.get("blocking") is not None else True,
        "url": url,
        "method": method,
        "statuses": statuses,
        "assertions": checks,
        "header_checks": header_checks,
        "content_type": (probe.get("content_type") or "").strip().lower() or None,
        "max_latency_ms": probe.get("max_latency_ms") if probe.get("max_latency_ms") is not None else params.get("max_latency_ms"),
        "write": bool(write),
        "spec": spec,
        "probe": probe,
        "body_from": body_from,
        "source_error": None,
    }


def plan_probes(params):
    plans = []
    seen = {}
    for index, probe in enumerate(params.get("probes") or []):
        plan = plan_probe(index, probe, params)
        names = [plan["name"]]
        if plan["kind"] == "readyz" and probe.get("split_criteria", True):
            names += ["%s:migrations" % plan["name"], "%s:jobs" % plan["name"]]
        for name in names:
            if name in seen:
                raise ProbeInputError("%s: name '%s' is already used by probes[%d]; names must be unique"
                                      % (plan["where"], name, seen[name]))
            seen[name] = index
        plans.append(plan)
    if not plans:
        raise ProbeInputError("probes must list at least one probe")
    graph = dict((plan["name"], probe_sources.sources_of(plan["body_from"])) for plan in plans)
    for name, reason in probe_sources.dependency_errors(graph).items():
        plans[[plan["name"] for plan in plans].index(name)]["source_error"] = reason
    return plans


def run_order(plans):
    """The plans with the sources of ``body_from`` before the probes that take from them. Sent in this order
    to a first-in first-out pool, a probe waiting for its sources never holds back one that it waits for."""
    graph = dict((plan["name"], probe_sources.sources_of(plan["body_from"])) for plan in plans)
    errors = dict((plan["name"], plan["source_error"]) for plan in plans if plan["source_error"])
    by_name = dict((plan["name"], plan) for plan in plans)
    return [by_name[name] for name in probe_sources.run_order(graph, errors)]


# --------------------------------------------------------------------------------------------------
# Evaluation: one answer -> checks -> record parts
# --------------------------------------------------------------------------------------------------

def _result(path, op, expected, actual, ok, note=None):
    item = {"path": path, "op": op, "expected": expected, "actual": actual, "ok": bool(ok)}
    if note:
        item["note"] = note
    return item


def _status_of(results):
    if any(r.get("error") for r in results):
        return ERROR
    if any(not r["ok"] for r in results):
        return FAIL
    return PASS


def response_checks(plan, response):
    """Status, content type, headers, JSON assertions and latency of one answer."""
    results = []
    if plan["statuses"]:
        results.append(_result("status_code", "in", plan["statuses"], response.status, response.status in plan["statuses"]))
    if plan["content_type"]:
        results.append(_result("header:Content-Type", "==", plan["content_type"], response.content_type or None,
                               response.content_type == plan["content_type"]))
    for check in plan["header_checks"]:
        results.append(asserts.check_header(check, response.header(check["name"]), is_sensitive_header(check["name"])))
    if plan["assertions"]:
        document = response.json()
        if response.json_error:
            results.extend(asserts.not_json_results(plan["assertions"], response.json_error))
        else:
            results.extend(asserts.evaluate_all(plan["assertions"], document))
    if plan["max_latency_ms"] is not None:
        latency = round(response.elapsed_ms, 1)
        results.append(_result("latency_ms", "<=", plan["max_latency_ms"], latency, latency <= plan["max_latency_ms"]))
    return results


def body_excerpt(response, secrets):
    if not response.body:
        return ""
    document = response.json()
    if response.json_error is None:
        text = json.dumps(secrets.value(document), sort_keys=True)
    else:
        text = secrets.text(response.text)
    if len(text) > BODY_EXCERPT_CHARS:
        text = text[:BODY_EXCERPT_CHARS] + "..."
    return text


def problem_detail(response):
    """The ``detail`` (or ``title``) of a problem+json / FastAPI error body, for summaries."""
    document = response.json() if response.body else None
    if isinstance(document, dict):
        for key in ("detail", "title", "message"):
            if isinstance(document.get(key), str) and document[key]:
                return document[key][:200]
    return None


def describe(results):
    failed = [r for r in results if not r["ok"]]
    lines = [asserts.describe_failure(r) for r in failed[:MAX_SUMMARY_FAILURES]]
    if len(failed) > MAX_SUMMARY_FAILURES:
        lines.append("and %d more" % (len(failed) - MAX_SUMMARY_FAILURES))
    return "; ".join(lines)


class Part:
    """One record in the making (criterion, name, status, summary, evidence)."""

    def __init__(self, criterion, name, status, summary, evidence):
        self.criterion = criterion
        self.name = name
        self.status = status
        self.summary = summary
        self.evidence = evidence


def part_from_results(plan, criterion, name, response, results, secrets, outcome=None, extra=None, what=None):
    status = _status_of(results)
    failed = [r for r in results if not r["ok"]]
    evidence = {
        "url": safe_url(plan["url"]),
        "method": plan["method"],
        "status_code": response.status,
        "latency_ms": round(response.elapsed_ms, 1),
        "checks": len(results),
        "failed": failed,
    }
    if outcome is not None:
        evidence["attempts"] = len(outcome.attempts)
        if len(outcome.attempts) > 1:
            evidence["attempt_log"] = outcome.attempt_log()
    if response.truncated:
        evidence["body_truncated"] = True
    if extra:
        evidence.update(extra)
    head = "%s: %s %s" % (name, plan["method"], safe_url(plan["url"]))
    if what:
        head += " (%s)" % what
    if status == PASS:
        summary = "%s: %d in %d ms, %d checks passed" % (head, response.status, round(response.elapsed_ms), len(results))
    else:
        evidence["body_excerpt"] = body_excerpt(response, secrets)
        summary = "%s: %d of %d checks failed: %s" % (head, len(failed), len(results), describe(results))
        detail = problem_detail(response)
        if detail and detail not in summary:
            summary += " (detail: %s)" % detail
    return Part(criterion, name, status, summary, evidence)


def error_part(plan, criterion, name, outcome=None, error=None, note=None):
    """No usable answer: the check cannot decide."""
    evidence = {"url": safe_url(plan["url"]), "method": plan["method"]}
    head = "%s: %s %s" % (name, plan["method"], safe_url(plan["url"]))
    if outcome is not None:
        evidence["attempts"] = len(outcome.attempts)
        evidence["attempt_log"] = outcome.attempt_log()
        if outcome.gave_up:
            evidence["gave_up"] = outcome.gave_up
    if outcome is not None and outcome.throttled:
        evidence["status_code"] = 429
        evidence["error"] = "rate limited"
        summary = "%s: rate limited (429) on every one of %d attempts; cannot decide" % (head, len(outcome.attempts))
    else:
        error = error or (outcome.error if outcome is not None else None)
        kind = getattr(error, "kind", "error")
        message = getattr(error, "message", None) or str(error)
        evidence["error"] = "%s: %s" % (kind, message)
        attempts = " after %d attempts" % len(outcome.attempts) if outcome is not None and len(outcome.attempts) > 1 else ""
        summary = "%s: no answer%s (%s: %s); cannot decide" % (head, attempts, kind, message)
    if note:
        summary += "; " + note
    return Part(criterion, name, ERROR, summary, evidence)


def _check_by_name(document):
    checks = document.get("checks") if isinstance(document, dict) else None
    by_name = {}
    if isinstance(checks, list):
        for entry in checks:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                by_name[entry["name"]] = entry
    return checks, by_name


def _check_reason(entry):
    detail = entry.get("detail") if isinstance(entry.get("detail"), dict) else {}
    age, limit = detail.get("age_seconds"), detail.get("threshold_seconds")
    if asserts.type_name(age) == "number" and asserts.type_name(limit) == "number" and age >= limit:
        return "heartbeat %ss old, limit %ss" % (age, limit)
    if detail.get("migrations_current") is False and detail.get("current_version") != detail.get("expected_head"):
        return "database at %s, expected %s" % (detail.get("current_version"), detail.get("expected_head"))
    for key in ("message", "error", "reason"):
        if isinstance(detail.get(key), str) and detail[key]:
            return detail[key][:160]
    return "ok is %s" % json.dumps(entry.get("ok"))


def evaluate_readyz(plan, response, outcome, secrets):
    probe = plan["probe"]
    name = plan["name"]
    results = response_checks(plan, response)
    document = response.json()
    failing = []
    by_name = {}
    if response.json_error:
        results.append(_result("body", "type", "object", None, False, response.json_error))
    else:
        results.append(_result("ok", "==", True, document.get("ok") if isinstance(document, dict) else None,
                               isinstance(document, dict) and document.get("ok") is True))
        checks, by_name = _check_by_name(document)
        if not isinstance(checks, list):
            results.append(_result("checks", "type", "array", asserts.type_name(checks), False))
        else:
            for entry in checks:
                if not isinstance(entry, dict):
                    continue
                entry_ok = entry.get("ok") is True
                results.append(_result("checks[?name=='%s'].ok" % entry.get("name"), "==", True, entry.get("ok"), entry_ok))
                if not entry_ok:
                    failing.append("%s (%s)" % (entry.get("name"), _check_reason(entry)))
        for required in probe.get("required_checks") or []:
            if required not in by_name:
                results.append(_result("checks[?name=='%s']" % required, "exists", True, False, False,
                                       "the service reports no '%s' check" % required))
    extra = {"failing_checks": failing} if failing else {}
    main = part_from_results(plan, plan["criterion"], name, response, results, secrets, outcome, extra)
    if failing and main.status != PASS:
        main.summary += "; failing checks: %s" % ", ".join(failing)
    parts = [main]
    if not probe.get("split_criteria", True):
        return parts
    parts.append(_readyz_migrations(plan, response, outcome, secrets, by_name))
    parts.append(_readyz_jobs(plan, response, outcome, secrets, by_name))
    return parts


def _readyz_sub_unparsed(plan, criterion, name, response, outcome, secrets):
    return part_from_results(plan, criterion, name, response,
                             [_result("body", "type", "object", None, False, response.json_error or "not an object")],
                             secrets, outcome)


def _readyz_migrations(plan, response, outcome, secrets, by_name):
    probe = plan["probe"]
    name = "%s:migrations" % plan["name"]
    check_name = probe.get("migrations_check") or "migrations"
    if response.json_error or not isinstance(response.json(), dict):
        return _readyz_sub_unparsed(plan, "migrations.readyz", name, response, outcome, secrets)
    entry = by_name.get(check_name)
    if entry is None:
        results = [_result("checks[?name=='%s']" % check_name, "exists", True, False, False,
                           "the service reports no '%s' check" % check_name)]
        return part_from_results(plan, "migrations.readyz", name, response, results, secrets, outcome)
    detail = entry.get("detail") if isinstance(entry.get("detail"), dict) else {}
    base = "checks[?name=='%s']" % check_name
    results = [
        _result(base + ".ok", "==", True, entry.get("ok"), entry.get("ok") is True),
        _result(base + ".detail.migrations_current", "==", True, detail.get("migrations_current"),
                detail.get("migrations_current") is True),
    ]
    extra = {}
    for key in ("current_version", "expected_head", "expected_heads", "message"):
        if key in detail:
            extra[key] = detail[key]
    part = part_from_results(plan, "migrations.readyz", name, response, results, secrets, outcome, extra, what="migrations check")
    if part.status == PASS and detail.get("current_version"):
        part.summary = "%s: migrations current at %s" % (name, detail["current_version"])
    return part


def _readyz_jobs(plan, response, outcome, secrets, by_name):
    probe = plan["probe"]
    name = "%s:jobs" % plan["name"]
    check_name = probe.get("jobs_check") or "jobs"
    if response.json_error or not isinstance(response.json(), dict):
        return _readyz_sub_unparsed(plan, "jobs.heartbeat", name, response, outcome, secrets)
    entry = by_name.get(check_name)
    base = "checks[?name=='%s']" % check_name
    if entry is None:
        results = [_result(base, "exists", True, False, False, "the service reports no '%s' check" % check_name)]
        return part_from_results(plan, "jobs.heartbeat", name, response, results, secrets, outcome)
    detail = entry.get("detail") if isinstance(entry.get("detail"), dict) else {}
    # detail.enabled is the service's heartbeat check; detail.jobs_enabled only says whether the API process runs
    # the jobs itself (JOBS_ENABLED) - an external runner writes the heartbeat either way. Reported, never gated on.
    keys = ("enabled", "jobs_enabled", "last_heartbeat", "runner_id", "age_seconds", "threshold_seconds", "message")
    extra = dict((key, detail[key]) for key in keys if key in detail)
    if detail.get("enabled") is False:
        allowed = bool(probe.get("allow_heartbeat_disabled"))
        results = [_result(base + ".detail.enabled", "==", True, False, allowed,
                           None if allowed else "the service does not check the job heartbeat; nothing shows that jobs run")]
        part = part_from_results(plan, "jobs.heartbeat", name, response, results, secrets, outcome, extra, what="jobs check")
        if allowed:
            part.summary = "%s: heartbeat check disabled on the service (allowed by allow_heartbeat_disabled)" % name
        return part
    threshold = probe.get("heartbeat_max_age_seconds")
    threshold_source = "heartbeat_max_age_seconds"
    if threshold is None:
        threshold = detail.get("threshold_seconds")
        threshold_source = base + ".detail.threshold_seconds"
    age = detail.get("age_seconds")
    results = [_result(base + ".ok", "==", True, entry.get("ok"), entry.get("ok") is True,
                       detail.get("message") if entry.get("ok") is not True else None)]
    if asserts.type_name(threshold) != "number":
        results.append(_result(threshold_source, "type", "number", asserts.type_name(threshold), False,
                               "no heartbeat threshold to compare with"))
    elif asserts.type_name(age) != "number":
        results.append(_result(base + ".detail.age_seconds", "<", threshold, age, False, "no heartbeat age reported"))
    else:
        results.append(_result(base + ".detail.age_seconds", "<", threshold, age, age < threshold))
    part = part_from_results(plan, "jobs.heartbeat", name, response, results, secrets, outcome, extra, what="jobs check")
    if part.status == PASS:
        part.summary = "%s: job heartbeat %ss old (limit %ss)" % (name, age, threshold)
        if detail.get("jobs_enabled") is False:
            part.summary += "; jobs_enabled false (the API process runs no jobs; the heartbeat comes from a runner)"
    return part


def evaluate_backup(plan, response, outcome, secrets):
    probe = plan["probe"]
    limit = probe.get("max_age_seconds") or 93600
    results = response_checks(plan, response)
    document = response.json()
    extra = {}
    if response.status in plan["statuses"]:
        if not isinstance(document, dict):
            results.append(_result("body", "type", "object", asserts.type_name(document), False, response.json_error))
        else:
            age = document.get("age_seconds")
            results.append(_result("backup_ok", "==", True, document.get("backup_ok"), document.get("backup_ok") is True))
            if asserts.type_name(age) == "number":
                results.append(_result("age_seconds", "<", limit, age, age < limit))
            else:
                results.append(_result("age_seconds", "<", limit, age, False, "no backup age reported"))
            for key in ("last_backup_utc", "age_seconds"):
                if key in document:
                    extra[key] = document[key]
    return [part_from_results(plan, plan["criterion"], plan["name"], response, results, secrets, outcome, extra)]


def evaluate_response(plan, response, outcome, secrets):
    kind = plan["kind"]
    if kind == "readyz":
        return evaluate_readyz(plan, response, outcome, secrets)
    if kind == "backup":
        return evaluate_backup(plan, response, outcome, secrets)
    results = response_checks(plan, response)
    if kind == "healthz":
        document = response.json()
        status_value = document.get("status") if isinstance(document, dict) else None
        results.append(_result("status", "==", "ok", status_value, status_value == "ok",
                               response.json_error if response.json_error else None))
    extra = {}
    if kind == "https_redirect":
        extra["location"] = safe_url(response.header("Location"))
    return [part_from_results(plan, plan["criterion"], plan["name"], response, results, secrets, outcome, extra)]


def criteria_of(plan):
    if plan["kind"] == "readyz" and plan["probe"].get("split_criteria", True):
        return [(plan["criterion"], plan["name"]), ("migrations.readyz", "%s:migrations" % plan["name"]),
                ("jobs.heartbeat", "%s:jobs" % plan["name"])]
    return [(plan["criterion"], plan["name"])]


# --------------------------------------------------------------------------------------------------
# Running: attempts, modes, deadline
# --------------------------------------------------------------------------------------------------

# How long past the deadline a probe waits for its body_from sources (their last request may still be in flight).
SOURCE_WAIT_GRACE = 30.0


class Runner:
    def __init__(self, module, client, deadline, policy, budget=None):
        self.module = module
        self.params = module.params
        self.secrets = module.secrets
        self.client = client
        self.deadline = deadline
        self.policy = policy
        self.budget = budget
        self.finished = {}    # probe name -> Event, set once the probe's records are final
        self.answers = {}     # probe name -> (overall status, the answer of its last evaluation when it passed)
        self._responses = {}  # probe name -> the answer of its last evaluation

    def prepare(self, plans):
        for plan in plans:
            self.finished[plan["name"]] = threading.Event()

    def evaluate_once(self, plan):
        """One evaluation: a request with retries (or a TLS inspection) -> record parts."""
        if plan["kind"] == "tls":
            return self.evaluate_tls(plan)
        outcome = self.client.request(plan["spec"], self.policy, self.deadline, self.budget)
        self._responses[plan["name"]] = outcome.response
        if outcome.response is None or outcome.throttled:
            return [error_part(plan, criterion, name, outcome) for criterion, name in criteria_of(plan)]
        return evaluate_response(plan, outcome.response, outcome, self.secrets)

    def evaluate_tls(self, plan):
        probe = plan["probe"]
        spec = plan["spec"]
        host, port = _host_port(plan["url"])
        ca_path = spec.ca_path
        waiter = Waiter(self.deadline, self.client.sleep)
        attempts = 0
        retry_number = 0
        while True:
            attempts += 1
            try:
                report = inspect_tls(host, port, server_hostname=probe.get("server_hostname") or host, ca_path=ca_path,
                                     client_cert=spec.client_cert, client_key=spec.client_key,
                                     timeout=spec.timeout, deadline=self.deadline)
                break
            except TransportError as exc:
                if not exc.retryable or retry_number >= self.policy.retries:
                    return [error_part(plan, plan["criterion"], plan["name"], error=exc,
                                       note="%d attempt(s)" % attempts)]
                retry_number += 1
                if not waiter.pause(self.policy.delay(retry_number, self.client.rand())):
                    return [error_part(plan, plan["criterion"], plan["name"], error=exc,
                                       note="deadline reached after %d attempt(s)" % attempts)]
        min_days = probe.get("min_days_valid")
        min_days = 14 if min_days is None else min_days
        results = [
            _result("certificate.verified", "==", True, report["verified"], report["verified"], report.get("verify_error")),
            _result("certificate.hostname_match", "==", True, report.get("hostname_match"), report.get("hostname_match") is True),
            _result("certificate.days_to_expiry", ">=", min_days, report.get("days_to_expiry"),
                    report.get("days_to_expiry") is not None and report["days_to_expiry"] >= min_days),
        ]
        if not ca_path:
            results.append(_result("certificate.self_signed", "==", False, report.get("self_signed"),
                                   report.get("self_signed") is False, None))
        status = _status_of(results)
        failed = [r for r in results if not r["ok"]]
        evidence = {"url": safe_url(plan["url"]), "certificate": report, "checks": len(results), "failed": failed,
                    "attempts": attempts}
        head = "%s: certificate of %s:%s" % (plan["name"], report["host"], port)
        if status == PASS:
            summary = "%s: valid, issued by %s, %s days to expiry" % (head, report.get("issuer_cn"), report.get("days_to_expiry"))
        else:
            summary = "%s: %d of %d checks failed: %s" % (head, len(failed), len(results), describe(results))
        return [Part(plan["criterion"], plan["name"], status, summary, evidence)]

    def run(self, plan):
        """The probe's records; what it answered is kept for the probes that take their body from it."""
        name = plan["name"]
        status = ERROR
        try:
            records = self.run_probe(plan)
            statuses = set(record["status"] for record in records)
            status = PASS if statuses == set([PASS]) else next(s for s in (ERROR, FAIL, SKIPPED) if s in statuses)
            return records
        finally:
            self.answers[name] = (status, self._responses.get(name) if status == PASS else None)
            if name in self.finished:
                self.finished[name].set()

    def source_body(self, plan):
        """``(plan with the body filled from its sources' answers, None)`` or ``(plan, why it cannot be sent)``."""
        documents = {}
        for source in probe_sources.sources_of(plan["body_from"]):
            if not self.finished[source].wait(self.deadline.remaining() + SOURCE_WAIT_GRACE):
                return plan, "its body_from source '%s' did not finish before the deadline" % source
            status, response = self.answers.get(source, (ERROR, None))
            if status != PASS:
                return plan, "its body_from source '%s' did not pass (%s), so there is no answer to take from" % (
                    source, status)
            if response is None:
                return plan, "its body_from source '%s' has no HTTP answer" % source
            document = response.json()
            if response.json_error:
                return plan, "the answer of its body_from source '%s' is not JSON (%s)" % (source, response.json_error)
            documents[source] = document
        try:
            body = probe_sources.fill_body(plan["probe"].get("json_body"), plan["body_from"], documents)
        except probe_sources.SourceUnusable as exc:
            return plan, str(exc)
        spec = copy.copy(plan["spec"])
        spec.headers = dict(spec.headers)
        spec.body = json.dumps(body)
        return dict(plan, spec=spec), None

    def source_error(self, plan, reason, watch):
        """A probe that cannot be sent because of its body_from: it cannot decide, and nothing was sent."""
        evidence = {"url": safe_url(plan["url"]), "method": plan["method"], "sent": False, "error": reason,
                    "body_from": probe_sources.describe(plan["body_from"])}
        return [make_record(criterion, ERROR, self.secrets.text("%s: %s %s not sent: %s; cannot decide"
                                                                % (name, plan["method"], safe_url(plan["url"]), reason)),
                            evidence=evidence, blocking=plan["blocking"], duration_ms=watch.elapsed_ms, name=name)
                for criterion, name in criteria_of(plan)]

    def run_probe(self, plan):
        """All evaluations of one probe under the mode's rules -> records."""
        watch = Stopwatch()
        if plan["source_error"]:
            return self.source_error(plan, plan["source_error"], watch)
        if plan["write"] and self.module.check_mode:
            return [make_record(criterion, SKIPPED, "%s: write probe %s %s planned, not sent in check mode"
                                % (name, plan["method"], safe_url(plan["url"])),
                                evidence={"url": safe_url(plan["url"]), "method": plan["method"], "planned": True},
                                blocking=plan["blocking"], name=name)
                    for criterion, name in criteria_of(plan)]
        if plan["body_from"]:
            plan, problem = self.source_body(plan)
            if problem:
                return self.source_error(plan, problem, watch)
        mode = self.params["mode"]
        needed = self.params["consecutive_successes"]
        interval = self.params["interval"]
        waiter = Waiter(self.deadline, self.client.sleep)
        evaluations = 0
        streak = 0
        parts = []
        stop_reason = None
        while True:
            parts = self.evaluate_once(plan)
            evaluations += 1
            passed = all(part.status == PASS for part in parts)
            streak = streak + 1 if passed else 0
            if streak >= needed:
                break
            if mode == "check" and not passed:
                break
            if not waiter.pause(interval):
                stop_reason = "deadline"
                break
        records = []
        for part in parts:
            status = part.status
            summary = part.summary
            if stop_reason == "deadline":
                if status == PASS:
                    status = FAIL
                    summary += "; but only %d of %d consecutive successes before the deadline" % (streak, needed)
                elif mode == "wait":
                    summary += "; still not passing when the deadline (%ss) was reached" % self.params["deadline"]
            elif mode == "check" and needed > 1 and status != PASS and evaluations > 1:
                summary += "; evaluation %d of %d in a row failed (flapping)" % (evaluations, needed)
            evidence = dict(part.evidence)
            evidence.update({"mode": mode, "evaluations": evaluations, "consecutive_successes": streak,
                             "consecutive_required": needed})
            if plan["body_from"]:
                evidence["body_from"] = probe_sources.describe(plan["body_from"])
            records.append(make_record(part.criterion, status, summary, evidence=evidence, blocking=plan["blocking"],
                                       duration_ms=watch.elapsed_ms, name=part.name))
        return records

    def crashed(self, plan, exc):
        """A bug must not become a traceback or a pass: an error record with a redacted message."""
        message = self.secrets.text("%s: %s" % (exc.__class__.__name__, exc))
        return [make_record(criterion, ERROR, "%s: internal error, cannot decide: %s" % (name, message),
                            evidence={"url": safe_url(plan["url"])}, blocking=plan["blocking"], name=name)
                for criterion, name in criteria_of(plan)]


def _host_port(url):
    parts = urlsplit(url)
    return parts.hostname, parts.port or (443 if parts.scheme.lower() == "https" else 80)


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
        )),
        headers=dict(type="dict", default={}),
        mode=dict(type="str", default="check", choices=["check", "wait"]),
        consecutive_successes=dict(type="int", default=1),
        interval=dict(type="float", default=1.0),
        follow_redirects=dict(type="str", default="safe", choices=FOLLOW_REDIRECTS),
        max_latency_ms=dict(type="float"),
        admin=dict(type="dict"),
    )
    return spec


MATRIX_HTTP_OPTIONS = ("base_url", "timeout", "connect_timeout", "retries", "backoff", "backoff_max", "validate_certs",
                       "ca_path", "client_cert", "client_key", "use_proxy")


def admin_matrix(module):
    """The ``admin`` option validated with basic_auth_endpoint's own spec and planned, or None."""
    raw = module.params.get("admin")
    if raw is None:
        return None
    if module.params["mode"] != "check":
        module.fail_redacted("admin: the authorization matrix runs with mode=check only")
    result = ArgumentSpecValidator(matrix_argument_spec()).validate(dict(raw))
    if result.error_messages:
        module.fail_redacted("admin: %s" % "; ".join(result.error_messages))
    params = dict(result.validated_parameters)
    for key in MATRIX_HTTP_OPTIONS:
        params[key] = module.params.get(key)
    try:
        return MatrixRun(params, module.check_mode, module.secrets)
    except MatrixInputError as exc:
        module.fail_redacted("admin: %s" % exc)


def main():
    module = SecretAwareModule(argument_spec=argument_spec(), supports_check_mode=True, secret_collector=collect_secrets)
    watch = Stopwatch()
    params = module.params
    problem = http_params_error(params)
    if problem:
        module.fail_redacted(problem)
    if params["consecutive_successes"] < 1:
        module.fail_redacted("consecutive_successes must be 1 or more, got %s" % params["consecutive_successes"])
    if params["interval"] < 0:
        module.fail_redacted("interval must be 0 or more, got %s" % params["interval"])
    if params["max_latency_ms"] is not None and not params["max_latency_ms"] > 0:
        module.fail_redacted("max_latency_ms must be greater than 0, got %s" % params["max_latency_ms"])
    try:
        plans = plan_probes(params)
    except ProbeInputError as exc:
        module.fail_redacted(str(exc))
    matrix = admin_matrix(module)

    deadline = Deadline(params["deadline"])
    # In check mode a service that refuses connections is reported after one retry cycle, not one per probe;
    # wait mode keeps polling until the deadline (the service may be starting).
    # The probes and the admin matrix share one client: at most `concurrency` requests in flight in all.
    client = HttpClient(fail_fast=params["mode"] == "check", max_in_flight=params["concurrency"])
    # ... and one request budget: the service counts the probes' and the matrix's requests alike.
    budget = RequestBudget.from_options(params["rate_limit"], params["base_url"])
    runner = Runner(module, client, deadline, retry_policy_from(params), budget)
    matrix_records = []
    thread = None
    if matrix is not None:
        def run_matrix():
            matrix_records.extend(matrix.run(client, budget=budget))
        thread = threading.Thread(target=run_matrix, name="admin-matrix")
        thread.daemon = True
        thread.start()
    runner.prepare(plans)
    ordered = run_order(plans)
    batches = run_concurrently(runner.run, ordered, params["concurrency"], runner.crashed)
    by_index = dict((plan["index"], batch) for plan, batch in zip(ordered, batches))
    records = [record for index in sorted(by_index) for record in by_index[index]]
    extra = {}
    if thread is not None:
        thread.join()
        records.extend(matrix_records)
        extra = dict(admin_requests_sent=matrix.requests_sent)
    records = module.secrets.value(records)
    exit_with_records(module, records, changed=False, elapsed_ms=round(watch.elapsed_ms, 1), rate_limit=budget.report(),
                      **extra)


if __name__ == "__main__":
    main()

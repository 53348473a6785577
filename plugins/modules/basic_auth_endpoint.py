#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: basic_auth_endpoint
short_description: Check the authorization matrix of Basic-Auth admin endpoints
version_added: 0.1.0
description:
  - For each admin endpoint, sends the request with no credentials, with a wrong password and as each
    listed role, and checks every answer against the expected status - 401 for no credentials and for a
    wrong password (with the reason header C(X-Admin-Auth-Fail-Reason)), the role's status (2xx, or 403
    problem+json for a too-weak role), 409 problem+json for writes in read-only mode.
  - The answer of the endpoint's functional role is also checked for its shape (JMESPath assertions,
    content type) and reported under the endpoint's own criterion (C(admin.export_dlq), C(smoke.metrics_csv) ...).
  - Optionally reads GET /v1/admin/jobs/status and checks each job's last success and consecutive failures
    (criterion C(jobs.status)).
  - Returns one record per endpoint and identity (criteria C(auth.anonymous), C(auth.wrong_password),
    C(auth.roles)) plus the functional records. Failing checks are data for the gate, not task failures.
  - Credentialed writes are only sent when O(allow_writes=true) and not in check mode; otherwise they are
    reported as C(skipped). Requests without credentials or with a wrong password are sent for writes too,
    because the service rejects them before any effect.
  - Requests are spent from the service's request budget (O(rate_limit)), shared with earlier runs through the
    controller's ledger; a 429 that arrives anyway is waited out and never counted as a pass or a fail.
  - Passwords never appear in records, messages or the echoed arguments.
author:
  - CleanWithSnapshot release engineering (!UNKNOWN)
extends_documentation_fragment:
  - cleanwithsnapshot.release.http_client
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads run for real; credentialed writes are reported as planned and not sent.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  base_url:
    description: The service's base URL. Required for this module.
    type: str
    required: true
  roles:
    description:
      - Credentials per role, a dict of role name to C(username) and C(password). The role names are the keys used in
        O(endpoints[].expect). A role without a username or password fails the task, naming the role.
      - The passwords are never printed (they are treated as no-log values before Ansible validates the arguments).
    type: dict
    required: true
  wrong_password_role:
    description:
      - Whose username the wrong-password probes use. Defaults to the first role of O(roles).
    type: str
  extra_headers:
    description:
      - Headers sent with every credentialed request. The real service accepts Basic Auth only with
        C(X-Auth-MFA true), which its reverse proxy adds.
    type: dict
    default: {X-Auth-MFA: 'true'}
  anonymous_extra_headers:
    description:
      - Send O(extra_headers) with the requests that carry no credentials too. Off by default - an anonymous
        caller from outside does not have them.
    type: bool
    default: false
  endpoints:
    description:
      - The endpoints to check.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The endpoint's name; records are named C(<name>:<identity>) and C(<name>).
        type: str
        required: true
      criterion:
        description:
          - The criterion of the functional record (the functional role's answer), for example C(admin.export_dlq).
            Without it only the authorization records are produced.
        type: str
      path:
        description: The path (with its query string) joined to O(base_url).
        type: str
        required: true
      method:
        description: The HTTP method.
        type: str
        default: GET
      body:
        description: A raw request body. Mutually exclusive with O(endpoints[].json_body).
        type: str
      json_body:
        description: A request body sent as JSON.
        type: raw
      expect:
        description:
          - Expected status (an integer or a list) per identity - C(anonymous), C(wrong_password) and any role
            of O(roles). Identities not listed are not probed, except C(anonymous) and C(wrong_password), which
            default to 401 (409 for writes when O(read_only_mode=true)).
          - Set C(anonymous) or C(wrong_password) to C(skip) to leave that probe out.
          - With O(read_only_mode=true) every identity of a write endpoint is expected to get 409.
        type: dict
        default: {}
      expect_reason:
        description:
          - Expected C(X-Admin-Auth-Fail-Reason) per identity, checked when a 401 is expected. Defaults to
            C(mfa_required) for C(anonymous) and C(invalid_credentials) for C(wrong_password). An empty string
            disables the check for that identity.
        type: dict
        default: {}
      functional_role:
        description:
          - The role whose answer is checked for shape and content. Defaults to the first role in
            O(endpoints[].expect) expected to get a 2xx.
        type: str
      assertions:
        description:
          - JMESPath assertions on the functional role's JSON answer, as in
            M(cleanwithsnapshot.release.readiness_probe) (C(path), C(op), C(value), C(expected_path)).
        type: list
        elements: dict
        suboptions:
          path:
            description: A JMESPath expression.
            type: str
            required: true
          op:
            description: One of C(==), C(!=), C(<), C(<=), C(>), C(>=), C(in), C(contains), C(exists), C(type), C(regex).
            type: str
            default: '=='
          value:
            description: The expected value.
            type: raw
          expected_path:
            description: Take the expected value from this expression on the same body.
            type: str
      content_type:
        description: The expected media type of the functional answer, for example C(text/csv).
        type: str
      body_regex:
        description:
          - A pattern the functional answer's body must match (for non-JSON answers such as CSV; the first row is
            checked with C(^range_start,) for instance).
        type: str
      write:
        description:
          - The request changes data. Defaults to true for POST, PUT, PATCH and DELETE.
        type: bool
      blocking:
        description: Whether this endpoint's records gate the release.
        type: bool
        default: true
  read_only_mode:
    description:
      - The service is declared to run with C(ADMIN_READ_ONLY=true). Writes must then answer 409 problem+json
        before authentication - the request without credentials is expected to get 409 too, and its answer
        makes the O(read_only_criterion) record of the endpoint.
      - Declared false, a write answered 409 problem+json (read-only mode on, answering before authentication) is
        one failed O(read_only_criterion) record C(<endpoint>:read_only) naming the identities refused; the
        C(auth.*) records of those answers and the endpoint's own criterion are C(skipped) - not judged, because
        nothing about the credentials or the endpoint shows behind the 409 - never failures of their own.
    type: bool
    default: false
  read_only_criterion:
    description: The criterion of the read-only records of write endpoints (read-only mode as declared, or not).
    type: str
    default: switches.read_only
  allow_writes:
    description:
      - Send credentialed writes (they change data - cleanup, e-mail scan, retention). Off by default; never in check mode.
    type: bool
    default: false
  deadline:
    description:
      - Overall time budget in seconds (waits for the rate limit included).
    type: float
    default: 120
  concurrency:
    description: How many requests run at the same time.
    type: int
    default: 4
  jobs_status:
    description:
      - Check the jobs' status endpoint (criterion C(jobs.status)). Not checked when omitted.
    type: dict
    suboptions:
      path:
        description: The path of the status list.
        type: str
        default: /v1/admin/jobs/status
      role:
        description: The role to read it as. Defaults to the first role of O(roles).
        type: str
      max_age_seconds:
        description: The oldest accepted C(last_success_at) of a job, in seconds.
        type: float
        default: 3600
      max_consecutive_failures:
        description:
          - The most C(consecutive_failures) a job may have. One failed cycle is tolerated by default; a job that
            fails on every cycle shows 2 after its second cycle and fails the check.
        type: int
        default: 1
      required_jobs:
        description: Job names that must be in the list.
        type: list
        elements: str
        default: []
      ignore_jobs:
        description:
          - Job names not judged (for example the runner's own heartbeat row when it has no success time).
        type: list
        elements: str
        default: []
      allow_empty:
        description: Pass when no job has reported yet (the service answers C([]) before any job ran).
        type: bool
        default: false
      criterion:
        description: The criterion id of the record.
        type: str
        default: jobs.status
      blocking:
        description: Whether the record gates the release.
        type: bool
        default: true
seealso:
  - module: cleanwithsnapshot.release.readiness_probe
"""

EXAMPLES = r"""
- name: Authorization matrix of the admin API (reads only, writes probed without credentials)
  cleanwithsnapshot.release.basic_auth_endpoint:
    base_url: "{{ api_base_url }}"
    roles:
      admin: {username: "{{ admin_user }}", password: "{{ admin_password }}"}
      dispatcher: {username: "{{ dispatcher_user }}", password: "{{ dispatcher_password }}"}
      viewer: {username: "{{ viewer_user }}", password: "{{ viewer_password }}"}
    endpoints:
      - name: export_dlq
        criterion: admin.export_dlq
        path: /v1/admin/export-dead-letter?limit=1
        expect: {admin: 200, viewer: 200}
        assertions:
          - {path: '@', op: type, value: object}
          - {path: items, op: type, value: array}
          - {path: total, op: type, value: integer}
      - name: outbox_dlq
        criterion: admin.outbox_dlq
        path: /v1/admin/outbox/dead-letter?limit=1
        expect: {admin: 200, viewer: 200}
        assertions:
          - {path: '@', op: type, value: array}
      - name: metrics_csv
        criterion: smoke.metrics_csv
        path: /v1/admin/metrics?format=csv
        expect: {admin: 200, viewer: 403}
        content_type: text/csv
        body_regex: '^range_start,'
      - name: queue_photos
        criterion: smoke.queue
        path: /v1/admin/queue/photos?status=pending&limit=1
        expect: {dispatcher: 200, viewer: 403}
        assertions:
          - {path: pending_count, op: type, value: integer}
      - name: cleanup
        criterion: admin.cleanup
        path: /v1/admin/cleanup
        method: POST
        expect: {admin: 202, viewer: 403}
        assertions:
          - {path: deleted, op: type, value: integer}
    jobs_status:
      max_age_seconds: 900
  register: admin_auth

- name: During an incident with ADMIN_READ_ONLY=true, writes must answer 409 before authentication
  cleanwithsnapshot.release.basic_auth_endpoint:
    base_url: "{{ api_base_url }}"
    read_only_mode: true
    roles:
      admin: {username: "{{ admin_user }}", password: "{{ admin_password }}"}
    endpoints:
      - name: cleanup
        criterion: admin.cleanup
        path: /v1/admin/cleanup
        method: POST
        expect: {admin: 409}
"""

RETURN = r"""
records:
  description:
    - One record per endpoint and identity (C(<endpoint>:anonymous), C(<endpoint>:wrong_password),
      C(<endpoint>:<role>)), one functional record per endpoint with a criterion (C(<endpoint>)), one
      C(<endpoint>:read_only) record per write endpoint in read-only mode, and C(jobs_status) when asked.
    - C(status) is C(pass), C(fail), C(error) (no answer, persistent 429) or C(skipped) (a write not sent).
  returned: always
  type: list
  elements: dict
  contains:
    criterion:
      description: The criterion id (C(auth.anonymous), C(auth.wrong_password), C(auth.roles), the endpoint's criterion, C(jobs.status)).
      type: str
      sample: auth.roles
    name:
      description: The record's name.
      type: str
      sample: metrics_csv:viewer
    status:
      description: pass, fail, error or skipped.
      type: str
    blocking:
      description: Whether the record gates the release.
      type: bool
    summary:
      description: One line naming the endpoint, the identity and what failed.
      type: str
      sample: "metrics_csv:viewer: GET http://127.0.0.1:8000/v1/admin/metrics?format=csv as role viewer: 403 as expected"
    evidence:
      description:
        - C(url), C(method), C(identity), C(status_code), C(expected_status), C(reason) (the fail-reason header),
          C(failed) (failed checks as C({path, op, expected, actual, ok})), C(attempts), C(body_excerpt) (on failure,
          redacted), C(jobs) (jobs_status).
      type: dict
    duration_ms:
      description: Time of the request(s) behind the record, in milliseconds.
      type: float
status:
  description: The worst status among blocking records.
  returned: always
  type: str
  sample: pass
counts:
  description: Number of records per status.
  returned: always
  type: dict
requests_sent:
  description: How many HTTP requests were sent (retries included).
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
elapsed_ms:
  description: Wall time of the whole module call in milliseconds.
  returned: always
  type: float
"""

import datetime

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.auth_matrix import (
    InputError,
    MatrixRun,
    collect_matrix_secrets,
    matrix_argument_spec,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import Stopwatch, exit_with_records
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.rate_budget import RequestBudget
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_transport import HttpClient
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.module_support import (
    collect_common_secrets,
    http_common_argument_spec,
    http_params_error,
    SecretAwareModule,
)


def collect_secrets(params, secrets):
    collect_common_secrets(params, secrets)
    collect_matrix_secrets(params, secrets)


def argument_spec():
    spec = http_common_argument_spec()
    spec.update(matrix_argument_spec())
    spec.update(base_url=dict(type="str", required=True))
    return spec


def main(now=None):
    module = SecretAwareModule(argument_spec=argument_spec(), supports_check_mode=True, secret_collector=collect_secrets)
    watch = Stopwatch()
    params = module.params
    problem = http_params_error(params)
    if problem:
        module.fail_redacted(problem)
    try:
        matrix = MatrixRun(params, module.check_mode, module.secrets)
    except InputError as exc:
        module.fail_redacted(str(exc))
    # fail_fast: once the service refused every attempt of a request, the rest are not retried against it.
    budget = RequestBudget.from_options(params["rate_limit"], params["base_url"])
    records = matrix.run(HttpClient(fail_fast=True), now=now or datetime.datetime.now(datetime.timezone.utc), budget=budget)
    exit_with_records(module, records, changed=False, requests_sent=matrix.requests_sent, rate_limit=budget.report(),
                      elapsed_ms=round(watch.elapsed_ms, 1))


if __name__ == "__main__":
    main()

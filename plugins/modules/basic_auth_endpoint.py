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
version_added: 1.0.0
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
  - Requests are paced to stay under the service's rate limit (O(requests_per_minute)); a 429 is retried after
    backoff and, if it persists, gives an C(error) record.
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
    type: bool
    default: false
  read_only_criterion:
    description: The criterion of the read-only records of write endpoints.
    type: str
    default: switches.read_only
  allow_writes:
    description:
      - Send credentialed writes (they change data - cleanup, e-mail scan, retention). Off by default; never in check mode.
    type: bool
    default: false
  requests_per_minute:
    description:
      - At most this many requests start in any 60-second window (the real service answers 429 from the 31st
        request in a minute). 0 disables pacing.
    type: int
    default: 25
  deadline:
    description:
      - Overall time budget in seconds (pacing included).
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
paced_seconds:
  description: Seconds spent waiting to stay under O(requests_per_minute).
  returned: always
  type: float
elapsed_ms:
  description: Wall time of the whole module call in milliseconds.
  returned: always
  type: float
"""

import datetime
import json
import re
import secrets as pysecrets

from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.urls import basic_auth_header

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
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_client import (
    Deadline,
    HttpClient,
    Outcome,
    RateLimiter,
    RequestSpec,
    SecretAwareModule,
    TransportError,
    collect_common_secrets,
    http_common_argument_spec,
    http_params_error,
    join_url,
    retry_policy_from,
    run_concurrently,
    safe_url,
    url_error,
)

ANONYMOUS = "anonymous"
WRONG_PASSWORD = "wrong_password"
SPECIAL = (ANONYMOUS, WRONG_PASSWORD)
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
PROBLEM_STATUSES = (403, 409, 422, 429)
PROBLEM_JSON = "application/problem+json"
REASON_HEADER = "X-Admin-Auth-Fail-Reason"
DEFAULT_REASONS = {ANONYMOUS: "mfa_required", WRONG_PASSWORD: "invalid_credentials"}
CRITERIA = {ANONYMOUS: "auth.anonymous", WRONG_PASSWORD: "auth.wrong_password"}
BODY_EXCERPT_CHARS = 400


class InputError(ValueError):
    pass


def collect_secrets(params, secrets):
    collect_common_secrets(params, secrets)
    secrets.add_headers(params.get("extra_headers") or {})
    roles = params.get("roles")
    if isinstance(roles, dict):
        for creds in roles.values():
            if isinstance(creds, dict) and creds.get("password"):
                secrets.add_basic(to_text(creds.get("username") or ""), to_text(creds["password"]))


def _statuses(value, where):
    items = value if isinstance(value, list) else [value]
    result = []
    for item in items:
        if isinstance(item, bool):
            raise InputError("%s must be an HTTP status or a list of them, got %r" % (where, item))
        try:
            code = int(item)
        except (TypeError, ValueError):
            raise InputError("%s must be an HTTP status or a list of them, got %r" % (where, item))
        if str(item).strip() != str(code) or not 100 <= code <= 599:
            raise InputError("%s: %r is not an HTTP status (100-599)" % (where, item))
        result.append(code)
    if not result:
        raise InputError("%s must not be empty" % where)
    return result


def validate_roles(params):
    roles = params["roles"]
    if not roles:
        raise InputError("roles must name at least one role with username and password")
    result = {}
    for role, creds in roles.items():
        if not re.match(r"^[A-Za-z][A-Za-z0-9_-]*$", str(role)):
            raise InputError("roles: role name %r must be letters, digits, '_' or '-'" % (role,))
        if role in SPECIAL:
            raise InputError("roles: %r is reserved for the probe without credentials / with a wrong password" % role)
        if not isinstance(creds, dict):
            raise InputError("roles.%s must be a dict with username and password" % role)
        unknown = sorted(set(creds) - set(["username", "password"]))
        if unknown:
            raise InputError("roles.%s has unknown keys: %s (expected username and password)" % (role, ", ".join(unknown)))
        if not creds.get("username") or not isinstance(creds.get("username"), str):
            raise InputError("roles.%s has no credentials: username is missing" % role)
        if not creds.get("password") or not isinstance(creds.get("password"), str):
            raise InputError("roles.%s has no credentials: password is missing" % role)
        if ":" in creds["username"]:
            raise InputError("roles.%s.username must not contain ':' (Basic Auth)" % role)
        result[role] = (creds["username"], creds["password"])
    return result


class Probe:
    """One request of the matrix: an endpoint as one identity."""

    def __init__(self, endpoint, identity, expected, reason, criterion, spec, send=True, skip_reason=None):
        self.endpoint = endpoint
        self.identity = identity
        self.expected = expected
        self.reason = reason
        self.criterion = criterion
        self.spec = spec
        self.send = send
        self.skip_reason = skip_reason
        self.outcome = None
        self.duration_ms = 0.0

    @property
    def name(self):
        return "%s:%s" % (self.endpoint["name"], self.identity)

    def describe_identity(self):
        if self.identity == ANONYMOUS:
            return "without credentials"
        if self.identity == WRONG_PASSWORD:
            return "as %s with a wrong password" % self.endpoint["wrong_user"]
        return "as role %s" % self.identity


def plan(params, module):
    roles = validate_roles(params)
    role_names = list(params["roles"].keys())
    wrong_role = params.get("wrong_password_role") or role_names[0]
    if wrong_role not in roles:
        raise InputError("wrong_password_role %r is not one of roles: %s" % (wrong_role, ", ".join(role_names)))
    extra = dict(params.get("extra_headers") or {})
    read_only = params["read_only_mode"]
    if not CRITERION_PATTERN.match(params["read_only_criterion"]):
        raise InputError("read_only_criterion %r is not a criterion id" % params["read_only_criterion"])
    if params["requests_per_minute"] < 0:
        raise InputError("requests_per_minute must be 0 or more, got %s" % params["requests_per_minute"])
    wrong_password = "wrong-" + pysecrets.token_hex(12)
    endpoints = []
    probes = []
    seen = set()
    for index, raw in enumerate(params["endpoints"]):
        where = "endpoints[%d] (name '%s')" % (index, raw["name"])
        if raw["name"] in seen:
            raise InputError("%s: the name is used twice; endpoint names must be unique" % where)
        seen.add(raw["name"])
        if raw.get("criterion") and not CRITERION_PATTERN.match(raw["criterion"]):
            raise InputError("%s.criterion %r is not a criterion id like 'admin.cleanup'" % (where, raw["criterion"]))
        if raw.get("body") is not None and raw.get("json_body") is not None:
            raise InputError("%s: body and json_body are mutually exclusive" % where)
        method = (raw.get("method") or "GET").upper()
        if not re.match(r"^[A-Z]+$", method):
            raise InputError("%s.method %r is not an HTTP method" % (where, raw.get("method")))
        url = join_url(params["base_url"], raw["path"])
        problem = url_error(url)
        if problem:
            raise InputError("%s.path: %s" % (where, problem))
        write = raw.get("write")
        if write is None:
            write = method in WRITE_METHODS
        try:
            checks = asserts.normalize_all(raw.get("assertions"), "%s.assertions" % where)
        except asserts.AssertionSpecError as exc:
            raise InputError(str(exc))
        body_pattern = None
        if raw.get("body_regex"):
            try:
                body_pattern = re.compile(raw["body_regex"], re.MULTILINE)
            except re.error as exc:
                raise InputError("%s.body_regex is not a valid regular expression: %s" % (where, exc))
        expect = dict(raw.get("expect") or {})
        for key in expect:
            if key not in SPECIAL and key not in roles:
                raise InputError("%s.expect: %r is neither anonymous, wrong_password nor a role of roles (%s)"
                                 % (where, key, ", ".join(role_names)))
        for key in list(expect.keys()):
            if expect[key] == "skip":
                continue
            expect[key] = _statuses(expect[key], "%s.expect.%s" % (where, key))
        reasons = dict(DEFAULT_REASONS)
        for key, value in (raw.get("expect_reason") or {}).items():
            if key not in SPECIAL and key not in roles:
                raise InputError("%s.expect_reason: %r is neither anonymous, wrong_password nor a role" % (where, key))
            reasons[key] = value or None
        functional_role = raw.get("functional_role")
        role_keys = [key for key in expect if key in roles and expect[key] != "skip"]
        if functional_role:
            if functional_role not in roles:
                raise InputError("%s.functional_role %r is not a role of roles" % (where, functional_role))
            if functional_role not in role_keys:
                raise InputError("%s.functional_role %r needs an expected status in expect" % (where, functional_role))
        else:
            for key in role_keys:
                if any(200 <= code < 300 for code in expect[key]):
                    functional_role = key
                    break
        if raw.get("criterion") and not functional_role and not (write and read_only):
            raise InputError("%s: criterion %s needs a role expected to get a 2xx in expect (or functional_role)"
                             % (where, raw["criterion"]))
        body = raw.get("body")
        headers_base = {}
        if raw.get("json_body") is not None:
            body = json.dumps(raw["json_body"])
            headers_base["Content-Type"] = "application/json"
        endpoint = {
            "name": raw["name"], "where": where, "criterion": raw.get("criterion"), "url": url, "method": method,
            "write": bool(write), "assertions": checks, "content_type": (raw.get("content_type") or "").lower() or None,
            "body_pattern": body_pattern, "blocking": raw.get("blocking", True), "functional_role": functional_role,
            "wrong_user": roles[wrong_role][0], "probes": {},
        }
        endpoints.append(endpoint)

        def spec_for(headers, idempotent=not write):
            all_headers = dict(headers_base)
            all_headers.update(headers)
            return RequestSpec(url, method=method, headers=all_headers, body=body, timeout=params["timeout"],
                               connect_timeout=params.get("connect_timeout"), validate_certs=params["validate_certs"],
                               ca_path=params.get("ca_path"), client_cert=params.get("client_cert"),
                               client_key=params.get("client_key"), follow_redirects="none", use_proxy=params["use_proxy"],
                               idempotent=idempotent)

        blocked_write = write and read_only
        for identity in SPECIAL:
            if expect.get(identity) == "skip":
                continue
            expected = expect.get(identity) or ([409] if blocked_write else [401])
            headers = dict(extra) if (identity == WRONG_PASSWORD or params["anonymous_extra_headers"]) else {}
            if identity == WRONG_PASSWORD:
                headers["Authorization"] = to_text(basic_auth_header(roles[wrong_role][0], wrong_password))
            probe = Probe(endpoint, identity, expected, reasons.get(identity), CRITERIA[identity], spec_for(headers))
            endpoint["probes"][identity] = probe
            probes.append(probe)
        for role in role_keys:
            headers = dict(extra)
            headers["Authorization"] = to_text(basic_auth_header(roles[role][0], roles[role][1]))
            send, skip_reason = True, None
            if write:
                # Not allowed is the reason in every mode; check mode only matters for writes that would be sent.
                if not params["allow_writes"]:
                    send, skip_reason = False, "writes not allowed (allow_writes is false)"
                elif module.check_mode:
                    send, skip_reason = False, "credentialed write planned, not sent in check mode"
            # Read-only mode answers 409 before authentication, whatever the role could do otherwise.
            expected = [409] if blocked_write else expect[role]
            probe = Probe(endpoint, role, expected, reasons.get(role), "auth.roles", spec_for(headers), send, skip_reason)
            endpoint["probes"][role] = probe
            probes.append(probe)
    jobs = None
    if params.get("jobs_status") is not None:
        options = params["jobs_status"]
        role = options.get("role") or role_names[0]
        if role not in roles:
            raise InputError("jobs_status.role %r is not a role of roles" % role)
        if not CRITERION_PATTERN.match(options["criterion"]):
            raise InputError("jobs_status.criterion %r is not a criterion id" % options["criterion"])
        if not options["max_age_seconds"] > 0:
            raise InputError("jobs_status.max_age_seconds must be greater than 0")
        if options["max_consecutive_failures"] < 0:
            raise InputError("jobs_status.max_consecutive_failures must be 0 or more")
        url = join_url(params["base_url"], options["path"])
        problem = url_error(url)
        if problem:
            raise InputError("jobs_status.path: %s" % problem)
        headers = dict(extra)
        headers["Authorization"] = to_text(basic_auth_header(roles[role][0], roles[role][1]))
        endpoint = {"name": "jobs_status", "url": url, "method": "GET", "wrong_user": None, "blocking": options["blocking"]}
        spec = RequestSpec(url, headers=headers, timeout=params["timeout"], connect_timeout=params.get("connect_timeout"),
                           validate_certs=params["validate_certs"], ca_path=params.get("ca_path"),
                           client_cert=params.get("client_cert"), client_key=params.get("client_key"),
                           follow_redirects="none", use_proxy=params["use_proxy"])
        jobs = Probe(endpoint, role, [200], None, options["criterion"], spec)
        jobs.options = options
        probes.append(jobs)
    if not endpoints and jobs is None:
        raise InputError("endpoints must list at least one endpoint (or give jobs_status)")
    return endpoints, probes, jobs


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------

def _result(path, op, expected, actual, ok, note=None):
    item = {"path": path, "op": op, "expected": expected, "actual": actual, "ok": bool(ok)}
    if note:
        item["note"] = note
    return item


def _excerpt(response, secrets):
    if not response.body:
        return ""
    document = response.json()
    if response.json_error is None:
        text = json.dumps(secrets.value(document), sort_keys=True, default=str)
    else:
        text = secrets.text(response.text)
    return text[:BODY_EXCERPT_CHARS] + ("..." if len(text) > BODY_EXCERPT_CHARS else "")


def _describe(results):
    failed = [r for r in results if not r["ok"]]
    lines = [asserts.describe_failure(r) for r in failed[:4]]
    if len(failed) > 4:
        lines.append("and %d more" % (len(failed) - 4))
    return "; ".join(lines)


def _base_evidence(probe):
    return {"url": safe_url(probe.endpoint["url"]), "method": probe.endpoint["method"], "identity": probe.identity}


def _head(probe, label=None):
    return "%s: %s %s %s" % (label or probe.name, probe.endpoint["method"], safe_url(probe.endpoint["url"]),
                             probe.describe_identity())


def no_answer_record(probe, criterion, name, blocking, secrets):
    outcome = probe.outcome
    evidence = _base_evidence(probe)
    evidence["attempts"] = len(outcome.attempts)
    evidence["attempt_log"] = outcome.attempt_log()
    if outcome.gave_up:
        evidence["gave_up"] = outcome.gave_up
    if outcome.throttled:
        evidence["status_code"] = 429
        evidence["error"] = "rate limited"
        summary = "%s: rate limited (429) on every one of %d attempts; cannot decide" % (_head(probe, name), len(outcome.attempts))
    else:
        evidence["error"] = "%s: %s" % (outcome.error.kind, outcome.error.message)
        summary = "%s: no answer (%s: %s); cannot decide" % (_head(probe, name), outcome.error.kind, outcome.error.message)
    return make_record(criterion, ERROR, secrets.text(summary), evidence=evidence, blocking=blocking,
                       duration_ms=probe.duration_ms, name=name)


def _answered(probe):
    return probe.outcome is not None and probe.outcome.response is not None and not probe.outcome.throttled


def auth_record(probe, secrets):
    """Did this identity get the status (and reason) it should?"""
    endpoint = probe.endpoint
    if not probe.send:
        return make_record(probe.criterion, SKIPPED, "%s: %s" % (_head(probe), probe.skip_reason),
                           evidence=dict(_base_evidence(probe), planned=True, expected_status=probe.expected),
                           blocking=endpoint["blocking"], name=probe.name)
    if not _answered(probe):
        return no_answer_record(probe, probe.criterion, probe.name, endpoint["blocking"], secrets)
    response = probe.outcome.response
    reason = response.header(REASON_HEADER)
    results = [_result("status_code", "in", probe.expected, response.status, response.status in probe.expected)]
    if probe.reason and 401 in probe.expected:
        results.append(_result("header:%s" % REASON_HEADER, "==", probe.reason, reason, reason == probe.reason))
    if response.status in PROBLEM_STATUSES and response.status in probe.expected:
        results.append(_result("header:Content-Type", "==", PROBLEM_JSON, response.content_type or None,
                               response.content_type == PROBLEM_JSON))
    evidence = _base_evidence(probe)
    evidence.update({"status_code": response.status, "expected_status": probe.expected, "reason": reason,
                     "attempts": len(probe.outcome.attempts), "latency_ms": round(response.elapsed_ms, 1)})
    failed = [r for r in results if not r["ok"]]
    evidence["failed"] = failed
    if failed:
        evidence["body_excerpt"] = _excerpt(response, secrets)
        summary = "%s: %s" % (_head(probe), _describe(results))
        if response.status not in probe.expected and 200 <= response.status < 300:
            if probe.identity == ANONYMOUS:
                summary += " - the endpoint answered WITHOUT credentials"
            elif probe.identity == WRONG_PASSWORD:
                summary += " - the endpoint answered to a wrong password"
            else:
                summary += " - the endpoint answered to a role that should be refused"
        if (response.status == 409 and response.content_type == PROBLEM_JSON and 409 not in probe.expected
                and endpoint["write"]):
            summary += " - the service refuses admin writes (read-only mode is on) but read_only_mode is false"
        status = FAIL
    else:
        summary = "%s: %d as expected%s" % (_head(probe), response.status, " (reason %s)" % reason if reason else "")
        status = PASS
    return make_record(probe.criterion, status, secrets.text(summary), evidence=evidence, blocking=endpoint["blocking"],
                       duration_ms=probe.duration_ms, name=probe.name)


def functional_record(endpoint, secrets, read_only):
    """The endpoint's own criterion: the functional role's answer has the right status, type and shape."""
    criterion = endpoint["criterion"]
    if not criterion:
        return None
    name = endpoint["name"]
    if endpoint["write"] and read_only:
        return make_record(criterion, SKIPPED, "%s: %s %s not run: admin writes are disabled (read_only_mode)"
                           % (name, endpoint["method"], safe_url(endpoint["url"])),
                           evidence={"url": safe_url(endpoint["url"]), "method": endpoint["method"], "read_only_mode": True},
                           blocking=endpoint["blocking"], name=name)
    probe = endpoint["probes"][endpoint["functional_role"]]
    if not probe.send:
        return make_record(criterion, SKIPPED, "%s: %s" % (_head(probe, name), probe.skip_reason),
                           evidence=dict(_base_evidence(probe), planned=True), blocking=endpoint["blocking"], name=name)
    if not _answered(probe):
        return no_answer_record(probe, criterion, name, endpoint["blocking"], secrets)
    response = probe.outcome.response
    expected_ok = [code for code in probe.expected if 200 <= code < 300] or probe.expected
    results = [_result("status_code", "in", expected_ok, response.status, response.status in expected_ok)]
    if endpoint["content_type"]:
        results.append(_result("header:Content-Type", "==", endpoint["content_type"], response.content_type or None,
                               response.content_type == endpoint["content_type"]))
    if endpoint["body_pattern"] is not None:
        text = response.text
        results.append(_result("body", "regex", endpoint["body_pattern"].pattern, text[:80] if text else None,
                               endpoint["body_pattern"].search(text) is not None))
    if endpoint["assertions"]:
        document = response.json()
        if response.json_error:
            results.extend(asserts.not_json_results(endpoint["assertions"], response.json_error))
        else:
            results.extend(asserts.evaluate_all(endpoint["assertions"], document))
    status = ERROR if any(r.get("error") for r in results) else FAIL if any(not r["ok"] for r in results) else PASS
    failed = [r for r in results if not r["ok"]]
    evidence = _base_evidence(probe)
    evidence.update({"status_code": response.status, "content_type": response.content_type,
                     "latency_ms": round(response.elapsed_ms, 1), "checks": len(results), "failed": failed,
                     "attempts": len(probe.outcome.attempts)})
    if status == PASS:
        summary = "%s: %d, %d checks passed" % (_head(probe, name), response.status, len(results))
    else:
        evidence["body_excerpt"] = _excerpt(response, secrets)
        summary = "%s: %d of %d checks failed: %s" % (_head(probe, name), len(failed), len(results), _describe(results))
    return make_record(criterion, status, secrets.text(summary), evidence=evidence, blocking=endpoint["blocking"],
                       duration_ms=probe.duration_ms, name=name)


def read_only_record(endpoint, criterion, secrets):
    """With read-only mode declared, a write without credentials must get 409 problem+json."""
    probe = endpoint["probes"].get(ANONYMOUS) or endpoint["probes"].get(WRONG_PASSWORD)
    name = "%s:read_only" % endpoint["name"]
    if probe is None:
        return make_record(criterion, SKIPPED, "%s: no request without credentials to judge read-only mode by" % name,
                           blocking=endpoint["blocking"], name=name)
    if not _answered(probe):
        return no_answer_record(probe, criterion, name, endpoint["blocking"], secrets)
    response = probe.outcome.response
    document = response.json()
    results = [
        _result("status_code", "==", 409, response.status, response.status == 409),
        _result("header:Content-Type", "==", PROBLEM_JSON, response.content_type or None, response.content_type == PROBLEM_JSON),
    ]
    evidence = _base_evidence(probe)
    evidence.update({"status_code": response.status, "failed": [r for r in results if not r["ok"]]})
    if isinstance(document, dict) and document.get("detail"):
        evidence["detail"] = document.get("detail")
    if all(r["ok"] for r in results):
        summary = "%s: %s %s answered 409 before authentication (%s)" % (
            name, endpoint["method"], safe_url(endpoint["url"]), evidence.get("detail") or "problem+json")
        status = PASS
    else:
        evidence["body_excerpt"] = _excerpt(response, secrets)
        summary = "%s: read-only mode is declared but %s %s %s: %s" % (
            name, endpoint["method"], safe_url(endpoint["url"]), probe.describe_identity(), _describe(results))
        status = FAIL
    return make_record(criterion, status, secrets.text(summary), evidence=evidence, blocking=endpoint["blocking"],
                       duration_ms=probe.duration_ms, name=name)


def parse_timestamp(value):
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        stamp = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return stamp


def evaluate_jobs(jobs_list, options, now):
    """Checks of GET /v1/admin/jobs/status: each job's last success recent, failures in a row bounded."""
    results = []
    summary_jobs = []
    max_age = options["max_age_seconds"]
    max_failures = options["max_consecutive_failures"]
    ignore = set(options.get("ignore_jobs") or [])
    if not isinstance(jobs_list, list):
        return [_result("@", "type", "array", asserts.type_name(jobs_list), False)], []
    names = set()
    for job in jobs_list:
        if not isinstance(job, dict):
            results.append(_result("@[]", "type", "object", asserts.type_name(job), False))
            continue
        name = job.get("name")
        names.add(name)
        if name in ignore:
            continue
        base = "[?name=='%s']" % name
        stamp = parse_timestamp(job.get("last_success_at"))
        age = round((now - stamp).total_seconds(), 1) if stamp else None
        failures = job.get("consecutive_failures")
        info = {"name": name, "last_success_age_seconds": age, "consecutive_failures": failures}
        if job.get("last_error"):
            info["last_error"] = str(job["last_error"])[:200]
        summary_jobs.append(info)
        if stamp is None:
            results.append(_result(base + ".last_success_at", "exists", True, job.get("last_success_at"), False,
                                   "the job has never succeeded" if job.get("last_success_at") is None
                                   else "not an ISO 8601 time"))
        else:
            results.append(_result(base + ".last_success_age_seconds", "<=", max_age, age, age <= max_age))
        if asserts.type_name(failures) != "number":
            results.append(_result(base + ".consecutive_failures", "type", "integer", asserts.type_name(failures), False))
        else:
            results.append(_result(base + ".consecutive_failures", "<=", max_failures, failures, failures <= max_failures,
                                   ("last error: %s" % str(job.get("last_error"))[:160]) if failures > max_failures and job.get("last_error") else None))
    for required in options.get("required_jobs") or []:
        if required not in names:
            results.append(_result("[?name=='%s']" % required, "exists", True, False, False, "the job has not reported"))
    if not jobs_list and not options.get("allow_empty"):
        results.append(_result("length(@)", ">", 0, 0, False, "no job has reported yet"))
    return results, summary_jobs


def jobs_record(probe, secrets, now):
    options = probe.options
    name = "jobs_status"
    criterion = options["criterion"]
    blocking = options["blocking"]
    if not _answered(probe):
        return no_answer_record(probe, criterion, name, blocking, secrets)
    response = probe.outcome.response
    evidence = _base_evidence(probe)
    evidence.update({"status_code": response.status, "attempts": len(probe.outcome.attempts)})
    if response.status != 200:
        evidence["body_excerpt"] = _excerpt(response, secrets)
        return make_record(criterion, FAIL, secrets.text("%s: %s: status %d, expected 200" % (name, _head(probe, name), response.status)),
                           evidence=evidence, blocking=blocking, duration_ms=probe.duration_ms, name=name)
    document = response.json()
    if response.json_error:
        evidence["body_excerpt"] = _excerpt(response, secrets)
        return make_record(criterion, FAIL, "%s: %s" % (_head(probe, name), response.json_error), evidence=evidence,
                           blocking=blocking, duration_ms=probe.duration_ms, name=name)
    results, jobs = evaluate_jobs(document, options, now)
    failed = [r for r in results if not r["ok"]]
    evidence.update({"jobs": jobs, "checks": len(results), "failed": failed,
                     "max_age_seconds": options["max_age_seconds"],
                     "max_consecutive_failures": options["max_consecutive_failures"]})
    if failed:
        summary = "%s: %d of %d checks failed: %s" % (_head(probe, name), len(failed), len(results), _describe(results))
        status = FAIL
    else:
        summary = "%s: %d jobs, each succeeded within %ss and has at most %d consecutive failures" % (
            name, len(jobs), options["max_age_seconds"], options["max_consecutive_failures"])
        status = PASS
    return make_record(criterion, status, secrets.text(summary), evidence=evidence, blocking=blocking,
                       duration_ms=probe.duration_ms, name=name)


def argument_spec():
    spec = http_common_argument_spec()
    spec.update(
        base_url=dict(type="str", required=True),
        deadline=dict(type="float", default=120.0),
        concurrency=dict(type="int", default=4),
        roles=dict(type="dict", required=True, no_log=False),
        wrong_password_role=dict(type="str", no_log=False),
        extra_headers=dict(type="dict", default={"X-Auth-MFA": "true"}),
        anonymous_extra_headers=dict(type="bool", default=False),
        endpoints=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            criterion=dict(type="str"),
            path=dict(type="str", required=True),
            method=dict(type="str", default="GET"),
            body=dict(type="str"),
            json_body=dict(type="raw"),
            expect=dict(type="dict", default={}),
            expect_reason=dict(type="dict", default={}),
            functional_role=dict(type="str"),
            assertions=dict(type="list", elements="dict", options=dict(
                path=dict(type="str", required=True),
                op=dict(type="str", default="=="),
                value=dict(type="raw"),
                expected_path=dict(type="str"),
            )),
            content_type=dict(type="str"),
            body_regex=dict(type="str"),
            write=dict(type="bool"),
            blocking=dict(type="bool", default=True),
        )),
        read_only_mode=dict(type="bool", default=False),
        read_only_criterion=dict(type="str", default="switches.read_only"),
        allow_writes=dict(type="bool", default=False),
        requests_per_minute=dict(type="int", default=25),
        jobs_status=dict(type="dict", options=dict(
            path=dict(type="str", default="/v1/admin/jobs/status"),
            role=dict(type="str"),
            max_age_seconds=dict(type="float", default=3600.0),
            max_consecutive_failures=dict(type="int", default=1),
            required_jobs=dict(type="list", elements="str", default=[]),
            ignore_jobs=dict(type="list", elements="str", default=[]),
            allow_empty=dict(type="bool", default=False),
            criterion=dict(type="str", default="jobs.status"),
            blocking=dict(type="bool", default=True),
        )),
    )
    return spec


def main(now=None):
    module = SecretAwareModule(argument_spec=argument_spec(), supports_check_mode=True, secret_collector=collect_secrets)
    watch = Stopwatch()
    params = module.params
    problem = http_params_error(params)
    if problem:
        module.fail_redacted(problem)
    try:
        endpoints, probes, jobs = plan(params, module)
    except InputError as exc:
        module.fail_redacted(str(exc))

    secrets = module.secrets
    client = HttpClient()
    deadline = Deadline(params["deadline"])
    policy = retry_policy_from(params)
    pacer = RateLimiter(params["requests_per_minute"]) if params["requests_per_minute"] > 0 else None

    def send(probe):
        if not probe.send:
            return probe
        timer = Stopwatch()
        probe.outcome = client.request(probe.spec, policy, deadline, pacer)
        probe.duration_ms = timer.elapsed_ms
        return probe

    def crashed(probe, exc):
        probe.outcome = Outcome()
        probe.outcome.error = TransportError("internal", secrets.text("%s: %s" % (exc.__class__.__name__, exc)))
        return probe

    run_concurrently(send, probes, params["concurrency"], crashed)
    records = []
    for endpoint in endpoints:
        for probe in endpoint["probes"].values():
            records.append(auth_record(probe, secrets))
        if endpoint["write"] and params["read_only_mode"]:
            records.append(read_only_record(endpoint, params["read_only_criterion"], secrets))
        functional = functional_record(endpoint, secrets, params["read_only_mode"])
        if functional is not None:
            records.append(functional)
    if jobs is not None:
        records.append(jobs_record(jobs, secrets, now or datetime.datetime.now(datetime.timezone.utc)))
    records = secrets.value(records)
    sent = sum(1 for p in probes if p.outcome is not None for attempt in p.outcome.attempts if attempt.sent)
    exit_with_records(module, records, changed=False, requests_sent=sent,
                      paced_seconds=round(pacer.waited if pacer else 0.0, 3), elapsed_ms=round(watch.elapsed_ms, 1))


if __name__ == "__main__":
    main()

# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The authorization matrix of Basic-Auth admin endpoints, shared by two modules.

``basic_auth_endpoint`` runs it alone (its options are the matrix's options at the top level);
``readiness_probe`` runs it in the same call as its probes (its ``admin`` option takes the same options), so a
release check needs one module task for all of its HTTP, not two. Planning (validated input -> requests),
sending (concurrent, paced under the service's rate limit) and judging (records) are all here, on the request plan
the probes use too (``request_plan``: methods, status lists, bodies, RequestSpecs, results); the modules only
declare options and exit.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re
import secrets as pysecrets

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    CRITERION_PATTERN,
    ERROR,
    FAIL,
    PASS,
    SKIPPED,
    Stopwatch,
    make_record,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import assertions as asserts
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_errors import TransportError
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_transport import Outcome, run_concurrently
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.module_support import (
    join_url,
    retry_policy_from,
    url_error,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import basic_auth_header, safe_url
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import request_plan as rp
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.waiter import Deadline

ANONYMOUS = "anonymous"
WRONG_PASSWORD = "wrong_password"
SPECIAL = (ANONYMOUS, WRONG_PASSWORD)
PROBLEM_STATUSES = (403, 409, 422, 429)
PROBLEM_JSON = "application/problem+json"
REASON_HEADER = "X-Admin-Auth-Fail-Reason"
DEFAULT_REASONS = {ANONYMOUS: "mfa_required", WRONG_PASSWORD: "invalid_credentials"}
CRITERIA = {ANONYMOUS: "auth.anonymous", WRONG_PASSWORD: "auth.wrong_password"}
BODY_EXCERPT_CHARS = 400


class InputError(rp.PlanError):
    pass


def collect_matrix_secrets(params, secrets):
    """The credentials of the matrix options (role passwords, extra header values), collected before validation."""
    if not isinstance(params, dict):
        return
    secrets.add_headers(params.get("extra_headers") or {})
    roles = params.get("roles")
    if isinstance(roles, dict):
        for creds in roles.values():
            if isinstance(creds, dict) and creds.get("password"):
                secrets.add_basic(to_text(creds.get("username") or ""), to_text(creds["password"]))


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


class _Context:
    """What every endpoint of a plan shares: the validated roles, the identity of the wrong-password probe, the extra
    headers, the modes and the connection options."""

    def __init__(self, params, check_mode):
        self.params = params
        self.check_mode = check_mode
        self.roles = validate_roles(params)
        self.role_names = list(params["roles"].keys())
        self.wrong_role = params.get("wrong_password_role") or self.role_names[0]
        if self.wrong_role not in self.roles:
            raise InputError("wrong_password_role %r is not one of roles: %s" % (self.wrong_role, ", ".join(self.role_names)))
        self.extra = dict(params.get("extra_headers") or {})
        self.read_only = params["read_only_mode"]
        if not CRITERION_PATTERN.match(params["read_only_criterion"]):
            raise InputError("read_only_criterion %r is not a criterion id" % params["read_only_criterion"])
        self.wrong_password = "wrong-" + pysecrets.token_hex(12)

    def basic_auth(self, role, password=None):
        username = self.roles[role][0]
        return to_text(basic_auth_header(username, self.roles[role][1] if password is None else password))


def plan(params, check_mode):
    """Validated matrix options -> (endpoints, every Probe to send, the jobs_status Probe or None)."""
    context = _Context(params, check_mode)
    endpoints = []
    probes = []
    seen = set()
    for index, raw in enumerate(params["endpoints"]):
        where = "endpoints[%d] (name '%s')" % (index, raw["name"])
        if raw["name"] in seen:
            raise InputError("%s: the name is used twice; endpoint names must be unique" % where)
        seen.add(raw["name"])
        endpoint = _plan_endpoint(context, raw, where)
        endpoints.append(endpoint)
        probes.extend(endpoint["probes"].values())
    jobs = _plan_jobs(context) if params.get("jobs_status") is not None else None
    if jobs is not None:
        probes.append(jobs)
    if not endpoints and jobs is None:
        raise InputError("endpoints must list at least one endpoint (or give jobs_status)")
    return endpoints, probes, jobs


def _plan_endpoint(context, raw, where):
    """One endpoint: its request, its checks and a Probe per identity."""
    params = context.params
    if raw.get("criterion") and not CRITERION_PATTERN.match(raw["criterion"]):
        raise InputError("%s.criterion %r is not a criterion id like 'admin.cleanup'" % (where, raw["criterion"]))
    method = rp.method_of(raw.get("method"), where, InputError)
    url = join_url(params["base_url"], raw["path"])
    problem = url_error(url)
    if problem:
        raise InputError("%s.path: %s" % (where, problem))
    write = rp.is_write(method, raw.get("write"))
    try:
        checks = asserts.normalize_all(raw.get("assertions"), "%s.assertions" % where)
    except asserts.AssertionSpecError as exc:
        raise InputError(str(exc))
    body_pattern = _body_pattern(raw, where)
    expect, reasons = _expectations(context, raw, where)
    role_keys = [key for key in expect if key in context.roles and expect[key] != "skip"]
    functional_role = _functional_role(raw, where, context, expect, role_keys)
    if raw.get("criterion") and not functional_role and not (write and context.read_only):
        raise InputError("%s: criterion %s needs a role expected to get a 2xx in expect (or functional_role)"
                         % (where, raw["criterion"]))
    headers_base = {}
    body = rp.request_body(raw.get("body"), raw.get("json_body"), headers_base, where, InputError)
    endpoint = {
        "name": raw["name"], "where": where, "criterion": raw.get("criterion"), "url": url, "method": method,
        "write": write, "assertions": checks, "content_type": (raw.get("content_type") or "").lower() or None,
        "body_pattern": body_pattern, "blocking": raw.get("blocking", True),
        "functional_role": functional_role, "wrong_user": context.roles[context.wrong_role][0], "probes": {},
    }

    def spec_for(headers, idempotent=not write):
        all_headers = dict(headers_base)
        all_headers.update(headers)
        return rp.request_spec(url, method, all_headers, body, params, "none", idempotent)

    _plan_identities(context, endpoint, expect, reasons, role_keys, spec_for)
    return endpoint


def _body_pattern(raw, where):
    if not raw.get("body_regex"):
        return None
    try:
        return re.compile(raw["body_regex"], re.MULTILINE)
    except re.error as exc:
        raise InputError("%s.body_regex is not a valid regular expression: %s" % (where, exc))


def _expectations(context, raw, where):
    """The expected statuses (or ``skip``) and the expected failure reasons per identity."""
    roles = context.roles
    expect = dict(raw.get("expect") or {})
    for key in expect:
        if key not in SPECIAL and key not in roles:
            raise InputError("%s.expect: %r is neither anonymous, wrong_password nor a role of roles (%s)"
                             % (where, key, ", ".join(context.role_names)))
    for key in list(expect.keys()):
        if expect[key] == "skip":
            continue
        expect[key] = rp.statuses_of(expect[key], "%s.expect.%s" % (where, key), rp.MATRIX_STATUS_MESSAGES, InputError)
    reasons = dict(DEFAULT_REASONS)
    for key, value in (raw.get("expect_reason") or {}).items():
        if key not in SPECIAL and key not in roles:
            raise InputError("%s.expect_reason: %r is neither anonymous, wrong_password nor a role" % (where, key))
        reasons[key] = value or None
    return expect, reasons


def _functional_role(raw, where, context, expect, role_keys):
    """The role whose answer the endpoint's own criterion judges: the one named, else the first expected a 2xx."""
    functional_role = raw.get("functional_role")
    if functional_role:
        if functional_role not in context.roles:
            raise InputError("%s.functional_role %r is not a role of roles" % (where, functional_role))
        if functional_role not in role_keys:
            raise InputError("%s.functional_role %r needs an expected status in expect" % (where, functional_role))
        return functional_role
    for key in role_keys:
        if any(200 <= code < 300 for code in expect[key]):
            return key
    return None


def _plan_identities(context, endpoint, expect, reasons, role_keys, spec_for):
    """A Probe per identity of ``endpoint``: without credentials, with a wrong password, then each role."""
    params = context.params
    write = endpoint["write"]
    blocked_write = write and context.read_only
    for identity in SPECIAL:
        if expect.get(identity) == "skip":
            continue
        expected = expect.get(identity) or ([409] if blocked_write else [401])
        headers = dict(context.extra) if (identity == WRONG_PASSWORD or params["anonymous_extra_headers"]) else {}
        if identity == WRONG_PASSWORD:
            headers["Authorization"] = context.basic_auth(context.wrong_role, context.wrong_password)
        endpoint["probes"][identity] = Probe(endpoint, identity, expected, reasons.get(identity), CRITERIA[identity],
                                             spec_for(headers))
    for role in role_keys:
        headers = dict(context.extra)
        headers["Authorization"] = context.basic_auth(role)
        send, skip_reason = True, None
        if write:
            # Not allowed is the reason in every mode; check mode only matters for writes that would be sent.
            if not params["allow_writes"]:
                send, skip_reason = False, "writes not allowed (allow_writes is false)"
            elif context.check_mode:
                send, skip_reason = False, "credentialed write planned, not sent in check mode"
        # Read-only mode answers 409 before authentication, whatever the role could do otherwise.
        expected = [409] if blocked_write else expect[role]
        endpoint["probes"][role] = Probe(endpoint, role, expected, reasons.get(role), "auth.roles", spec_for(headers),
                                         send, skip_reason)


def _plan_jobs(context):
    """The jobs_status request, as a role of roles."""
    params = context.params
    options = params["jobs_status"]
    role = options.get("role") or context.role_names[0]
    if role not in context.roles:
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
    headers = dict(context.extra)
    headers["Authorization"] = context.basic_auth(role)
    endpoint = {"name": "jobs_status", "url": url, "method": "GET", "wrong_user": None, "blocking": options["blocking"]}
    spec = rp.request_spec(url, "GET", headers, None, params, "none", idempotent=None)
    jobs = Probe(endpoint, role, [200], None, options["criterion"], spec)
    jobs.options = options
    return jobs


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------

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
    elif outcome.error.kind == "not_run":
        evidence.update({"sent": False, "error": "not_run: %s" % outcome.error.message})
        summary = "%s: not sent: %s; cannot decide" % (_head(probe, name), outcome.error.message)
    else:
        evidence["error"] = "%s: %s" % (outcome.error.kind, outcome.error.message)
        summary = "%s: no answer (%s: %s); cannot decide" % (_head(probe, name), outcome.error.kind, outcome.error.message)
    return make_record(criterion, ERROR, secrets.text(summary), evidence=evidence, blocking=blocking,
                       duration_ms=probe.duration_ms, name=name)


def _answered(probe):
    return probe.outcome is not None and probe.outcome.response is not None and not probe.outcome.throttled


def refused_by_read_only(probe):
    """The service answered this admin write 409 problem+json that the plan did not expect: read-only mode
    (ADMIN_READ_ONLY), which answers before authentication, is on although read_only_mode says it is off."""
    if not (probe.endpoint.get("write") and probe.send and _answered(probe)):
        return False
    response = probe.outcome.response
    return response.status == 409 and response.content_type == PROBLEM_JSON and 409 not in probe.expected


def _detail(response):
    document = response.json()
    return document.get("detail") if isinstance(document, dict) and isinstance(document.get("detail"), str) else None


def auth_record(probe, secrets, read_only_refused=False):
    """Did this identity get the status (and reason) it should?"""
    endpoint = probe.endpoint
    if not probe.send:
        return make_record(probe.criterion, SKIPPED, "%s: %s" % (_head(probe), probe.skip_reason),
                           evidence=dict(_base_evidence(probe), planned=True, expected_status=probe.expected),
                           blocking=endpoint["blocking"], name=probe.name)
    if not _answered(probe):
        return no_answer_record(probe, probe.criterion, probe.name, endpoint["blocking"], secrets)
    response = probe.outcome.response
    if read_only_refused:
        # 409 comes before authentication: nothing about the credentials can be judged from it. The one failure
        # is the undeclared read-only mode (undeclared_read_only_record), not this identity's authentication.
        evidence = _base_evidence(probe)
        evidence.update({"status_code": response.status, "expected_status": probe.expected,
                         "skip_reason": "read_only_refused", "detail": _detail(response),
                         "attempts": len(probe.outcome.attempts), "latency_ms": round(response.elapsed_ms, 1)})
        return make_record(probe.criterion, SKIPPED, secrets.text(
            "%s: not judged: answered 409 before authentication (admin writes refused, read-only mode on; the "
            "failure is %s:read_only)" % (_head(probe), endpoint["name"])),
            evidence=evidence, blocking=endpoint["blocking"], duration_ms=probe.duration_ms, name=probe.name)
    reason = response.header(REASON_HEADER)
    results = [rp.status_result(probe.expected, response)]
    if probe.reason and 401 in probe.expected:
        results.append(rp.result("header:%s" % REASON_HEADER, "==", probe.reason, reason, reason == probe.reason))
    if response.status in PROBLEM_STATUSES and response.status in probe.expected:
        results.append(rp.content_type_result(PROBLEM_JSON, response))
    evidence = _base_evidence(probe)
    evidence.update({"status_code": response.status, "expected_status": probe.expected, "reason": reason,
                     "attempts": len(probe.outcome.attempts), "latency_ms": round(response.elapsed_ms, 1)})
    failed = [r for r in results if not r["ok"]]
    evidence["failed"] = failed
    if failed:
        evidence["body_excerpt"] = rp.body_excerpt(response, secrets, BODY_EXCERPT_CHARS)
        summary = "%s: %s" % (_head(probe), rp.describe(results))
        if response.status not in probe.expected and 200 <= response.status < 300:
            if probe.identity == ANONYMOUS:
                summary += " - the endpoint answered WITHOUT credentials"
            elif probe.identity == WRONG_PASSWORD:
                summary += " - the endpoint answered to a wrong password"
            else:
                summary += " - the endpoint answered to a role that should be refused"
        status = FAIL
    else:
        summary = "%s: %d as expected%s" % (_head(probe), response.status, " (reason %s)" % reason if reason else "")
        status = PASS
    return make_record(probe.criterion, status, secrets.text(summary), evidence=evidence, blocking=endpoint["blocking"],
                       duration_ms=probe.duration_ms, name=probe.name)


def functional_record(endpoint, secrets, read_only, refused=()):
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
    if probe in refused:
        return make_record(criterion, SKIPPED, "%s: %s %s not run: the service refuses admin writes (read-only mode is on,"
                           " see %s:read_only)" % (name, endpoint["method"], safe_url(endpoint["url"]), name),
                           evidence={"url": safe_url(endpoint["url"]), "method": endpoint["method"], "read_only_mode": False,
                                     "status_code": 409, "skip_reason": "read_only_refused"},
                           blocking=endpoint["blocking"], duration_ms=probe.duration_ms, name=name)
    if not probe.send:
        return make_record(criterion, SKIPPED, "%s: %s" % (_head(probe, name), probe.skip_reason),
                           evidence=dict(_base_evidence(probe), planned=True), blocking=endpoint["blocking"], name=name)
    if not _answered(probe):
        return no_answer_record(probe, criterion, name, endpoint["blocking"], secrets)
    response = probe.outcome.response
    expected_ok = [code for code in probe.expected if 200 <= code < 300] or probe.expected
    results = [rp.status_result(expected_ok, response)]
    if endpoint["content_type"]:
        results.append(rp.content_type_result(endpoint["content_type"], response))
    if endpoint["body_pattern"] is not None:
        results.append(rp.body_pattern_result(endpoint["body_pattern"], response))
    if endpoint["assertions"]:
        results.extend(rp.assertion_results(endpoint["assertions"], response))
    status = rp.status_of(results)
    failed = [r for r in results if not r["ok"]]
    evidence = _base_evidence(probe)
    evidence.update({"status_code": response.status, "content_type": response.content_type,
                     "latency_ms": round(response.elapsed_ms, 1), "checks": len(results), "failed": failed,
                     "attempts": len(probe.outcome.attempts)})
    if status == PASS:
        summary = "%s: %d, %d checks passed" % (_head(probe, name), response.status, len(results))
    else:
        evidence["body_excerpt"] = rp.body_excerpt(response, secrets, BODY_EXCERPT_CHARS)
        summary = "%s: %d of %d checks failed: %s" % (_head(probe, name), len(failed), len(results), rp.describe(results))
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
        rp.result("status_code", "==", 409, response.status, response.status == 409),
        rp.content_type_result(PROBLEM_JSON, response),
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
        evidence["body_excerpt"] = rp.body_excerpt(response, secrets, BODY_EXCERPT_CHARS)
        summary = "%s: read-only mode is declared but %s %s %s: %s" % (
            name, endpoint["method"], safe_url(endpoint["url"]), probe.describe_identity(), rp.describe(results))
        status = FAIL
    return make_record(criterion, status, secrets.text(summary), evidence=evidence, blocking=endpoint["blocking"],
                       duration_ms=probe.duration_ms, name=name)


def undeclared_read_only_record(endpoint, refused, criterion, secrets):
    """read_only_mode is false, but the service answered this admin write 409 problem+json (read-only mode, before
    authentication): one failure of the read-only criterion, instead of one per identity under auth.*."""
    name = "%s:read_only" % endpoint["name"]
    first = refused[0]
    response = first.outcome.response
    identities = [probe.describe_identity() for probe in refused]
    results = [rp.result("status_code", "in", probe.expected, 409, False,
                         "%s: 409 problem+json, admin writes refused" % probe.identity) for probe in refused]
    evidence = {"url": safe_url(endpoint["url"]), "method": endpoint["method"], "read_only_mode": False,
                "status_code": 409, "identities": [probe.identity for probe in refused],
                "detail": _detail(response), "failed": results, "body_excerpt": rp.body_excerpt(response, secrets, BODY_EXCERPT_CHARS)}
    summary = ("%s: %s %s answered 409 problem+json %s (%s): the service refuses admin writes (read-only mode is on)"
               " but read_only_mode is false - switch read-only mode off, or declare it" % (
                   name, endpoint["method"], safe_url(endpoint["url"]), ", ".join(identities),
                   evidence["detail"] or "Conflict"))
    return make_record(criterion, FAIL, secrets.text(summary), evidence=evidence, blocking=endpoint["blocking"],
                       duration_ms=max(probe.duration_ms for probe in refused), name=name)


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
        return [rp.result("@", "type", "array", asserts.type_name(jobs_list), False)], []
    names = set()
    for job in jobs_list:
        if not isinstance(job, dict):
            results.append(rp.result("@[]", "type", "object", asserts.type_name(job), False))
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
            results.append(rp.result(base + ".last_success_at", "exists", True, job.get("last_success_at"), False,
                                     "the job has never succeeded" if job.get("last_success_at") is None
                                     else "not an ISO 8601 time"))
        else:
            results.append(rp.result(base + ".last_success_age_seconds", "<=", max_age, age, age <= max_age))
        if asserts.type_name(failures) != "number":
            results.append(rp.result(base + ".consecutive_failures", "type", "integer", asserts.type_name(failures), False))
        else:
            results.append(rp.result(base + ".consecutive_failures", "<=", max_failures, failures, failures <= max_failures,
                                     ("last error: %s" % str(job.get("last_error"))[:160]) if failures > max_failures and job.get("last_error") else None))
    for required in options.get("required_jobs") or []:
        if required not in names:
            results.append(rp.result("[?name=='%s']" % required, "exists", True, False, False, "the job has not reported"))
    if not jobs_list and not options.get("allow_empty"):
        results.append(rp.result("length(@)", ">", 0, 0, False, "no job has reported yet"))
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
        evidence["body_excerpt"] = rp.body_excerpt(response, secrets, BODY_EXCERPT_CHARS)
        return make_record(criterion, FAIL, secrets.text("%s: %s: status %d, expected 200" % (name, _head(probe, name), response.status)),
                           evidence=evidence, blocking=blocking, duration_ms=probe.duration_ms, name=name)
    document = response.json()
    if response.json_error:
        evidence["body_excerpt"] = rp.body_excerpt(response, secrets, BODY_EXCERPT_CHARS)
        return make_record(criterion, FAIL, "%s: %s" % (_head(probe, name), response.json_error), evidence=evidence,
                           blocking=blocking, duration_ms=probe.duration_ms, name=name)
    results, jobs = evaluate_jobs(document, options, now)
    failed = [r for r in results if not r["ok"]]
    evidence.update({"jobs": jobs, "checks": len(results), "failed": failed,
                     "max_age_seconds": options["max_age_seconds"],
                     "max_consecutive_failures": options["max_consecutive_failures"]})
    if failed:
        summary = "%s: %d of %d checks failed: %s" % (_head(probe, name), len(failed), len(results), rp.describe(results))
        status = FAIL
    else:
        summary = "%s: %d jobs, each succeeded within %ss and has at most %d consecutive failures" % (
            name, len(jobs), options["max_age_seconds"], options["max_consecutive_failures"])
        status = PASS
    return make_record(criterion, status, secrets.text(summary), evidence=evidence, blocking=blocking,
                       duration_ms=probe.duration_ms, name=name)


def matrix_argument_spec():
    """The matrix's own options (the HTTP client options - timeout, retries, TLS - come from the module)."""
    return dict(
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
            assertions=asserts.assertion_argument_spec(),
            content_type=dict(type="str"),
            body_regex=dict(type="str"),
            write=dict(type="bool"),
            blocking=dict(type="bool", default=True),
        ), mutually_exclusive=[["body", "json_body"]]),
        read_only_mode=dict(type="bool", default=False),
        read_only_criterion=dict(type="str", default="switches.read_only"),
        allow_writes=dict(type="bool", default=False),
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


class MatrixRun:
    """A planned matrix: ``run(client)`` sends its requests and returns the records."""

    def __init__(self, params, check_mode, secrets):
        self.params = params
        self.secrets = secrets
        self.endpoints, self.probes, self.jobs = plan(params, check_mode)
        self.requests_sent = 0

    def run(self, client, now=None, budget=None, deadline=None):
        """``budget``: the RequestBudget of the service, shared with the other requests of the module call;
        ``deadline``: the module call's, which the matrix's own deadline never outlasts."""
        params, secrets = self.params, self.secrets
        seconds = params["deadline"] if deadline is None else min(params["deadline"], deadline.remaining())
        deadline = Deadline(seconds)
        policy = retry_policy_from(params)

        def send(probe):
            if not probe.send:
                return probe
            timer = Stopwatch()
            probe.outcome = client.request(probe.spec, policy, deadline, budget)
            probe.duration_ms = timer.elapsed_ms
            return probe

        def crashed(probe, exc):
            probe.outcome = Outcome()
            probe.outcome.error = TransportError("internal", secrets.text("%s: %s" % (exc.__class__.__name__, exc)))
            return probe

        run_concurrently(send, self.probes, params["concurrency"], crashed)
        records = []
        for endpoint in self.endpoints:
            refused = [] if params["read_only_mode"] else [
                probe for probe in endpoint["probes"].values() if refused_by_read_only(probe)]
            for probe in endpoint["probes"].values():
                records.append(auth_record(probe, secrets, read_only_refused=probe in refused))
            if endpoint["write"] and params["read_only_mode"]:
                records.append(read_only_record(endpoint, params["read_only_criterion"], secrets))
            elif refused:
                records.append(undeclared_read_only_record(endpoint, refused, params["read_only_criterion"], secrets))
            functional = functional_record(endpoint, secrets, params["read_only_mode"], refused)
            if functional is not None:
                records.append(functional)
        if self.jobs is not None:
            records.append(jobs_record(self.jobs, secrets, now or datetime.datetime.now(datetime.timezone.utc)))
        self.requests_sent = sum(1 for p in self.probes if p.outcome is not None for attempt in p.outcome.attempts if attempt.sent)
        return secrets.value(records)

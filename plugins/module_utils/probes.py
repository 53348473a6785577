# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine of readiness_probe: planning (validated options -> probe plans on the shared request plan),
evaluation (one answer -> checks -> record parts, per probe kind) and the runner (the check and wait modes, TLS
inspections, probes that take their body from other probes' answers, the admin authorization matrix in the same
call). The module only declares its options and calls ``run``."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import re
import threading
from urllib.parse import urlsplit

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import assertions as asserts
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import probe_sources
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.auth_matrix import (
    InputError as MatrixInputError,
    MatrixRun,
    collect_matrix_secrets,
    matrix_argument_spec,
)
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
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_errors import (
    SERVICE_FAULT_ERRORS,
    UNREACHABLE_ERRORS,
    TransportError,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_transport import HttpClient, run_concurrently
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.module_support import (
    collect_common_secrets,
    http_params_error,
    join_url,
    retry_policy_from,
    url_error,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.rate_budget import RequestBudget
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import (
    basic_auth_header,
    is_sensitive_header,
    safe_url,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import request_plan as rp
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
SECURITY_HEADERS = [
    {"name": "X-Content-Type-Options", "value": "nosniff"},
    {"name": "X-Frame-Options", "value": "DENY"},
    {"name": "Referrer-Policy", "value": "no-referrer"},
]
HSTS_HEADER = {"name": "Strict-Transport-Security", "regex": r"max-age=[1-9][0-9]*"}
BODY_EXCERPT_CHARS = 600
# The connection options a probe may set for itself (else the module's apply).
PROBE_CONNECTION_OPTIONS = ("timeout", "validate_certs", "ca_path", "client_cert", "client_key")
# When the probes are sent: the preconditions first and alone, then the blocking probes with the admin matrix, then
# the probes that must not stall them (advisory or heavy ones, such as /openapi.json on a cold service).
PHASE_PRECONDITION, PHASE_MAIN, PHASE_AFTER_BLOCKING = 0, 1, 2
PHASE_NAMES = {PHASE_PRECONDITION: "precondition", PHASE_MAIN: "with the blocking probes",
               PHASE_AFTER_BLOCKING: "after_blocking"}


class ProbeInputError(rp.PlanError):
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


def _http_url(url):
    return re.sub(r"^https://", "http://", url, flags=re.IGNORECASE)


def plan_probe(index, probe, params):
    """One validated probe -> its plan (the request to send and the checks of the answer)."""
    kind = probe.get("kind") or "custom"
    defaults = KIND_DEFAULTS[kind]
    # A custom probe has a path or a url (required_if of the argument spec).
    name = probe.get("name") or (kind if kind != "custom" else None) or probe.get("path") or probe.get("url")
    where = "probes[%d] (name '%s')" % (index, name)
    criterion = _probe_criterion(probe, defaults, where)
    url = _probe_url(probe, kind, defaults, params, where)
    scheme = url.split(":", 1)[0].lower()
    method = rp.method_of(probe.get("method"), where, ProbeInputError)
    statuses = list(defaults["status_code"])
    if probe.get("status_code") is not None:
        statuses = rp.statuses_of(probe["status_code"], "%s.status_code" % where, rp.PROBE_STATUS_MESSAGES, ProbeInputError)
    _check_probe_limits(probe, params, where)
    checks, header_checks = _probe_checks(probe, kind, scheme, where)
    try:
        body_from = probe_sources.parse(probe.get("body_from"), where, probe.get("body") is not None,
                                        probe.get("json_body"))
    except probe_sources.SourceSpecError as exc:
        raise ProbeInputError(str(exc))
    write = rp.is_write(method, probe.get("write"))
    blocking = probe.get("blocking") if probe.get("blocking") is not None else True
    phase = _probe_phase(probe, kind, blocking, body_from, where)
    return {
        "index": index,
        "where": where,
        "name": name,
        "kind": kind,
        "criterion": criterion,
        "blocking": blocking,
        "phase": phase,
        "precondition": phase == PHASE_PRECONDITION,
        "policy": _probe_policy(probe, params),
        "url": url,
        "method": method,
        "statuses": statuses,
        "assertions": checks,
        "header_checks": header_checks,
        "content_type": (probe.get("content_type") or "").strip().lower() or None,
        "max_latency_ms": probe.get("max_latency_ms") if probe.get("max_latency_ms") is not None else params.get("max_latency_ms"),
        "write": write,
        "spec": _probe_spec(probe, kind, params, url, method, body_from, write, where),
        "probe": probe,
        "body_from": body_from,
        "source_error": None,
    }


def _probe_phase(probe, kind, blocking, body_from, where):
    """When the probe is sent: a precondition (by default the liveness probe, kind healthz) first and alone; an
    advisory probe (or one marked after_blocking) once every blocking probe and the admin matrix are done."""
    precondition = probe.get("precondition")
    if precondition is None:
        precondition = kind == "healthz"
    after_blocking = probe.get("after_blocking")
    if precondition and after_blocking:
        raise ProbeInputError("%s: precondition and after_blocking cannot both be true (a precondition is sent first)"
                              % where)
    if precondition and body_from:
        raise ProbeInputError("%s.body_from: a precondition is sent first and alone, so it cannot take its body from "
                              "another probe (set precondition: false)" % where)
    if precondition:
        return PHASE_PRECONDITION
    if after_blocking is None:
        after_blocking = not blocking
    return PHASE_AFTER_BLOCKING if after_blocking else PHASE_MAIN


def _probe_policy(probe, params):
    """The probe's own retry policy when it sets retries (the liveness precondition retries less), else None."""
    if probe.get("retries") is None:
        return None
    return retry_policy_from(dict(params, retries=probe["retries"]))


def _probe_criterion(probe, defaults, where):
    criterion = probe.get("criterion") or defaults["criterion"]
    if not criterion:
        raise ProbeInputError("%s: criterion is required for kind custom" % where)
    if not CRITERION_PATTERN.match(criterion):
        raise ProbeInputError("%s.criterion %r is not a criterion id like 'health.readiness'" % (where, criterion))
    return criterion


def _probe_url(probe, kind, defaults, params, where):
    """The probe's own url, else its path (or the kind's) on base_url (on http:// for https_redirect)."""
    base_url = params.get("base_url")
    if probe.get("url"):
        url = probe["url"]
    elif kind == "https_redirect" and base_url:
        url = join_url(_http_url(base_url), probe.get("path") or defaults["path"])
    elif base_url:
        url = join_url(base_url, probe.get("path") or defaults["path"])
    else:
        raise ProbeInputError("%s: url is required when base_url is not set" % where)
    problem = url_error(url)
    if problem:
        raise ProbeInputError("%s.url: %s" % (where, problem))
    scheme = url.split(":", 1)[0].lower()
    if kind == "tls" and scheme != "https":
        raise ProbeInputError("%s: kind tls needs an https:// URL, got %s" % (where, safe_url(url)))
    if kind == "https_redirect" and scheme != "http":
        raise ProbeInputError("%s: kind https_redirect needs an http:// URL, got %s" % (where, safe_url(url)))
    return url


def _check_probe_limits(probe, params, where):
    for name_key in ("timeout", "max_latency_ms"):
        if probe.get(name_key) is not None and not probe[name_key] > 0:
            raise ProbeInputError("%s.%s must be greater than 0, got %s" % (where, name_key, probe[name_key]))
    if probe.get("retries") is not None and probe["retries"] < 0:
        raise ProbeInputError("%s.retries must be 0 or more, got %s" % (where, probe["retries"]))
    if probe.get("min_days_valid") is not None and probe["min_days_valid"] < 0:
        raise ProbeInputError("%s.min_days_valid must be 0 or more" % where)
    if probe.get("max_age_seconds") is not None and not probe["max_age_seconds"] > 0:
        raise ProbeInputError("%s.max_age_seconds must be greater than 0" % where)
    if probe.get("heartbeat_max_age_seconds") is not None and not probe["heartbeat_max_age_seconds"] > 0:
        raise ProbeInputError("%s.heartbeat_max_age_seconds must be greater than 0" % where)
    if probe.get("client_key") and not (probe.get("client_cert") or params.get("client_cert")):
        raise ProbeInputError("%s.client_key needs client_cert" % where)


def _probe_checks(probe, kind, scheme, where):
    """The JSON assertions and the header checks of the answer (the kind's own headers first)."""
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
    return checks, header_checks


def _probe_spec(probe, kind, params, url, method, body_from, write, where):
    """The RequestSpec: the module's headers under the probe's, the body, credentials, the connection options."""
    headers = dict(params.get("headers") or {})
    headers.update(probe.get("headers") or {})
    if body_from and not rp.has_header(headers, "content-type"):
        headers["Content-Type"] = "application/json"
    body = rp.request_body(probe.get("body"), probe.get("json_body"), headers, where, ProbeInputError)
    if probe.get("url_username"):
        headers["Authorization"] = to_text(basic_auth_header(probe["url_username"], probe.get("url_password") or ""))
    if probe.get("bearer_token"):
        headers["Authorization"] = "Bearer %s" % probe["bearer_token"]
    if kind in ("healthz", "readyz", "backup") and not rp.has_header(headers, "accept"):
        headers["Accept"] = "application/json"
    follow = "none" if kind == "https_redirect" else (probe.get("follow_redirects") or params.get("follow_redirects") or "safe")
    # A probe's own connection options win over the module's (connect_timeout and use_proxy are the module's only).
    options = dict((key, params.get(key)) for key in rp.CONNECTION_OPTIONS)
    options.update((key, probe[key]) for key in PROBE_CONNECTION_OPTIONS if probe.get(key) is not None)
    return rp.request_spec(url, method, headers, body, options, follow, idempotent=not write)


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
    _check_source_phases(plans)
    return plans


def _check_source_phases(plans):
    """A probe cannot wait for a source that is sent after it (an advisory source runs after the blocking probes)."""
    by_name = dict((plan["name"], plan) for plan in plans)
    for plan in plans:
        for source in probe_sources.sources_of(plan["body_from"]):
            if source in by_name and by_name[source]["phase"] > plan["phase"]:
                raise ProbeInputError(
                    "%s.body_from: its source '%s' is sent %s, after this probe; set after_blocking the same on both"
                    % (plan["where"], source, PHASE_NAMES[by_name[source]["phase"]]))


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

def response_checks(plan, response):
    """Status, content type, headers, JSON assertions and latency of one answer."""
    results = []
    if plan["statuses"]:
        results.append(rp.status_result(plan["statuses"], response))
    if plan["content_type"]:
        results.append(rp.content_type_result(plan["content_type"], response))
    for check in plan["header_checks"]:
        results.append(asserts.check_header(check, response.header(check["name"]), is_sensitive_header(check["name"])))
    if plan["assertions"]:
        results.extend(rp.assertion_results(plan["assertions"], response))
    if plan["max_latency_ms"] is not None:
        latency = round(response.elapsed_ms, 1)
        results.append(rp.result("latency_ms", "<=", plan["max_latency_ms"], latency, latency <= plan["max_latency_ms"]))
    return results


def problem_detail(response):
    """The ``detail`` (or ``title``) of a problem+json / FastAPI error body, for summaries."""
    document = response.json() if response.body else None
    if isinstance(document, dict):
        for key in ("detail", "title", "message"):
            if isinstance(document.get(key), str) and document[key]:
                return document[key][:200]
    return None


class Part:
    """One record in the making (criterion, name, status, summary, evidence)."""

    def __init__(self, criterion, name, status, summary, evidence):
        self.criterion = criterion
        self.name = name
        self.status = status
        self.summary = summary
        self.evidence = evidence


def part_from_results(plan, criterion, name, response, results, secrets, outcome=None, extra=None, what=None):
    status = rp.status_of(results)
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
        evidence["body_excerpt"] = rp.body_excerpt(response, secrets, BODY_EXCERPT_CHARS)
        summary = "%s: %d of %d checks failed: %s" % (head, len(failed), len(results), rp.describe(results))
        detail = problem_detail(response)
        if detail and detail not in summary:
            summary += " (detail: %s)" % detail
    return Part(criterion, name, status, summary, evidence)


def error_part(plan, criterion, name, outcome=None, error=None, note=None):
    """No usable answer: the check cannot decide."""
    evidence = {"url": safe_url(plan["url"]), "method": plan["method"]}
    head = "%s: %s %s" % (name, plan["method"], safe_url(plan["url"]))
    error = error or (outcome.error if outcome is not None else None)
    if getattr(error, "kind", None) == "not_run":
        evidence.update({"sent": False, "error": "not_run: %s" % error.message})
        return Part(criterion, name, ERROR, "%s not sent: %s; cannot decide" % (head, error.message), evidence)
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
        kind = getattr(error, "kind", "error")
        message = getattr(error, "message", None) or str(error)
        evidence["error"] = "%s: %s" % (kind, message)
        attempts = " after %d attempts" % len(outcome.attempts) if outcome is not None and len(outcome.attempts) > 1 else ""
        summary = "%s: no answer%s (%s: %s); cannot decide" % (head, attempts, kind, message)
    if note:
        summary += "; " + note
    return Part(criterion, name, ERROR, summary, evidence)


def no_answer_part(plan, criterion, name, outcome):
    """No usable answer. A precondition (the liveness probe) says whose failure that is: a refused connection, or one
    accepted and never answered, is the service's (fail); a connect timeout, DNS or TLS trouble may be the network's
    or the checking machine's, so the check cannot decide (error). Either way the gate says NO-GO."""
    error = outcome.error
    part = error_part(plan, criterion, name, outcome)
    if not (plan["precondition"] and not outcome.throttled and getattr(error, "kind", None) in SERVICE_FAULT_ERRORS):
        return part
    head = "%s: %s %s" % (name, plan["method"], safe_url(plan["url"]))
    if error.kind == "refused":
        what = "the service refuses connections (nothing accepts them at %s)" % _host_port_text(plan["url"])
    else:
        waited = max([attempt.elapsed_ms for attempt in outcome.attempts] or [0.0]) / 1000.0
        what = "the service accepted the connection but sent no answer within %.1f s: it is hung" % waited
    part.status = FAIL
    part.summary = "%s: %s (%d attempt(s))" % (head, what, len(outcome.attempts))
    part.evidence["service_fault"] = "refused" if error.kind == "refused" else "hung"
    return part


def unreachable_reason(plan, outcome):
    """Why nothing else is sent once precondition ``plan`` got no answer (the words of every not-run record)."""
    error = outcome.error
    if error.kind == "refused":
        why = "the service refuses connections"
    elif error.kind == "timeout":
        why = "the service accepted the connection and never answered (hung)"
    else:
        why = "%s: %s" % (error.kind, error.message)
    return "the precondition probe '%s' (%s) got no answer (%s), so nothing else was sent" % (
        plan["name"], plan["criterion"], why)


def _host_port_text(url):
    host, port = _host_port(url)
    return "%s:%s" % (host, port)


def latency_only_failed(parts):
    """Whether the latency budget is the one check the answer failed (then a re-measure may clear it)."""
    failed = [result for part in parts for result in part.evidence.get("failed") or []]
    return bool(failed) and all(result["path"] == "latency_ms" for result in failed)


def note_latency_samples(parts, samples, budget):
    """The latencies of every answer judged, and what they mean, on the probe's records."""
    over = [sample for sample in samples if sample > budget]
    for part in parts:
        part.evidence["latency_samples_ms"] = list(samples)
    main = parts[0]
    if main.status == PASS:
        main.summary += "; re-measured: %d of %d answers over the %g ms budget (%s ms), the last within it" % (
            len(over), len(samples), budget, ", ".join("%g" % sample for sample in samples))
    elif len(over) == len(samples):
        main.summary += "; every one of %d answers was over the %g ms budget (%s ms)" % (
            len(samples), budget, ", ".join("%g" % sample for sample in samples))


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
        results.append(rp.result("body", "type", "object", None, False, response.json_error))
    else:
        results.append(rp.result("ok", "==", True, document.get("ok") if isinstance(document, dict) else None,
                                 isinstance(document, dict) and document.get("ok") is True))
        checks, by_name = _check_by_name(document)
        if not isinstance(checks, list):
            results.append(rp.result("checks", "type", "array", asserts.type_name(checks), False))
        else:
            for entry in checks:
                if not isinstance(entry, dict):
                    continue
                entry_ok = entry.get("ok") is True
                results.append(rp.result("checks[?name=='%s'].ok" % entry.get("name"), "==", True, entry.get("ok"), entry_ok))
                if not entry_ok:
                    failing.append("%s (%s)" % (entry.get("name"), _check_reason(entry)))
        for required in probe.get("required_checks") or []:
            if required not in by_name:
                results.append(rp.result("checks[?name=='%s']" % required, "exists", True, False, False,
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
                             [rp.result("body", "type", "object", None, False, response.json_error or "not an object")],
                             secrets, outcome)


def _readyz_check(plan, response, outcome, secrets, by_name, criterion, suffix):
    """The readyz check ``suffix`` (migrations or jobs; option ``<suffix>_check`` renames it) of the answer ->
    ``(name, base path, entry, None)``, or ``(name, base path, None, part)`` when the body is not an object or the
    service reports no such check."""
    name = "%s:%s" % (plan["name"], suffix)
    check_name = plan["probe"].get("%s_check" % suffix) or suffix
    base = "checks[?name=='%s']" % check_name
    if response.json_error or not isinstance(response.json(), dict):
        return name, base, None, _readyz_sub_unparsed(plan, criterion, name, response, outcome, secrets)
    entry = by_name.get(check_name)
    if entry is None:
        results = [rp.result(base, "exists", True, False, False, "the service reports no '%s' check" % check_name)]
        return name, base, None, part_from_results(plan, criterion, name, response, results, secrets, outcome)
    return name, base, entry, None


def _readyz_migrations(plan, response, outcome, secrets, by_name):
    name, base, entry, part = _readyz_check(plan, response, outcome, secrets, by_name, "migrations.readyz", "migrations")
    if part is not None:
        return part
    detail = entry.get("detail") if isinstance(entry.get("detail"), dict) else {}
    results = [
        rp.result(base + ".ok", "==", True, entry.get("ok"), entry.get("ok") is True),
        rp.result(base + ".detail.migrations_current", "==", True, detail.get("migrations_current"),
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
    name, base, entry, part = _readyz_check(plan, response, outcome, secrets, by_name, "jobs.heartbeat", "jobs")
    if part is not None:
        return part
    detail = entry.get("detail") if isinstance(entry.get("detail"), dict) else {}
    # detail.enabled is the service's heartbeat check; detail.jobs_enabled only says whether the API process runs
    # the jobs itself (JOBS_ENABLED) - an external runner writes the heartbeat either way. Reported, never gated on.
    keys = ("enabled", "jobs_enabled", "last_heartbeat", "runner_id", "age_seconds", "threshold_seconds", "message")
    extra = dict((key, detail[key]) for key in keys if key in detail)
    if detail.get("enabled") is False:
        allowed = bool(probe.get("allow_heartbeat_disabled"))
        results = [rp.result(base + ".detail.enabled", "==", True, False, allowed,
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
    results = [rp.result(base + ".ok", "==", True, entry.get("ok"), entry.get("ok") is True,
                         detail.get("message") if entry.get("ok") is not True else None)]
    if asserts.type_name(threshold) != "number":
        results.append(rp.result(threshold_source, "type", "number", asserts.type_name(threshold), False,
                                 "no heartbeat threshold to compare with"))
    elif asserts.type_name(age) != "number":
        results.append(rp.result(base + ".detail.age_seconds", "<", threshold, age, False, "no heartbeat age reported"))
    else:
        results.append(rp.result(base + ".detail.age_seconds", "<", threshold, age, age < threshold))
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
            results.append(rp.result("body", "type", "object", asserts.type_name(document), False, response.json_error))
        else:
            age = document.get("age_seconds")
            results.append(rp.result("backup_ok", "==", True, document.get("backup_ok"), document.get("backup_ok") is True))
            if asserts.type_name(age) == "number":
                results.append(rp.result("age_seconds", "<", limit, age, age < limit))
            else:
                results.append(rp.result("age_seconds", "<", limit, age, False, "no backup age reported"))
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
        results.append(rp.result("status", "==", "ok", status_value, status_value == "ok",
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
        self.latency_samples = self.params.get("latency_samples") or 1
        self.finished = {}    # probe name -> Event, set once the probe's records are final
        self.answers = {}     # probe name -> (overall status, the answer of its last evaluation when it passed)
        self._responses = {}  # probe name -> the answer of its last evaluation
        self._outcomes = {}   # probe name -> the Outcome of its last request
        self.requests_sent = 0
        self._count_lock = threading.Lock()

    def prepare(self, plans):
        for plan in plans:
            self.finished[plan["name"]] = threading.Event()

    def send(self, plan):
        """One request of the probe, with its retries; the Outcome is kept and its sent attempts counted."""
        outcome = self.client.request(plan["spec"], plan["policy"] or self.policy, self.deadline, self.budget)
        self._responses[plan["name"]] = outcome.response
        self._outcomes[plan["name"]] = outcome
        with self._count_lock:
            self.requests_sent += sum(1 for attempt in outcome.attempts if attempt.sent)
        return outcome

    def evaluate_once(self, plan):
        """One evaluation: a request with retries (or a TLS inspection) -> record parts. An answer whose one failed
        check is the latency budget is measured again (up to ``latency_samples`` answers, a request that may write
        never): a budget fails only when every answer is over it, so one stall (a cold service building its schema)
        is not a NO-GO."""
        if plan["kind"] == "tls":
            return self.evaluate_tls(plan)
        samples = []
        while True:
            outcome = self.send(plan)
            if outcome.response is None or outcome.throttled:
                return [no_answer_part(plan, criterion, name, outcome) for criterion, name in criteria_of(plan)]
            samples.append(round(outcome.response.elapsed_ms, 1))
            parts = evaluate_response(plan, outcome.response, outcome, self.secrets)
            if (len(samples) >= self.latency_samples or not plan["spec"].idempotent or self.deadline.expired()
                    or not latency_only_failed(parts)):
                break
        if len(samples) > 1:
            note_latency_samples(parts, samples, plan["max_latency_ms"])
        return parts

    def _cut_by_deadline(self, plan):
        """Whether the probe's last request was not sent at all because the deadline had passed."""
        outcome = self._outcomes.get(plan["name"])
        return (outcome is not None and outcome.response is None and outcome.error is not None
                and outcome.error.kind == "deadline" and not any(attempt.sent for attempt in outcome.attempts))

    def halt_if_unreachable(self, preconditions):
        """Once a precondition got no answer that says the service is not there, nothing else is sent: every later
        request is reported not run, naming that probe and why."""
        for plan in preconditions:
            outcome = self._outcomes.get(plan["name"])
            if (outcome is not None and outcome.response is None and outcome.error is not None
                    and outcome.error.kind in UNREACHABLE_ERRORS):
                self.client.halt(unreachable_reason(plan, outcome))
                return True
        return False

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
            rp.result("certificate.verified", "==", True, report["verified"], report["verified"], report.get("verify_error")),
            rp.result("certificate.hostname_match", "==", True, report.get("hostname_match"), report.get("hostname_match") is True),
            rp.result("certificate.days_to_expiry", ">=", min_days, report.get("days_to_expiry"),
                      report.get("days_to_expiry") is not None and report["days_to_expiry"] >= min_days),
        ]
        if not ca_path:
            results.append(rp.result("certificate.self_signed", "==", False, report.get("self_signed"),
                                     report.get("self_signed") is False, None))
        status = rp.status_of(results)
        failed = [r for r in results if not r["ok"]]
        evidence = {"url": safe_url(plan["url"]), "certificate": report, "checks": len(results), "failed": failed,
                    "attempts": attempts}
        head = "%s: certificate of %s:%s" % (plan["name"], report["host"], port)
        if status == PASS:
            summary = "%s: valid, issued by %s, %s days to expiry" % (head, report.get("issuer_cn"), report.get("days_to_expiry"))
        else:
            summary = "%s: %d of %d checks failed: %s" % (head, len(failed), len(results), rp.describe(results))
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
        halted = self.client.halted
        if halted is not None and not plan["precondition"]:
            parts = [error_part(plan, criterion, name, error=halted) for criterion, name in criteria_of(plan)]
            return [make_record(part.criterion, part.status, part.summary, evidence=part.evidence, blocking=plan["blocking"],
                                name=part.name) for part in parts]
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
            latest = self.evaluate_once(plan)
            if parts and self._cut_by_deadline(plan):
                # A poll the deadline cut off before anything was sent tells nothing: the last real one is reported.
                stop_reason = "deadline"
                break
            parts = latest
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


def run(module):
    """readiness_probe's work once Ansible validated its options: plan, send, judge, exit with the records."""
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
    if params["latency_samples"] < 1:
        module.fail_redacted("latency_samples must be 1 or more, got %s" % params["latency_samples"])
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
    runner.prepare(plans)
    by_index = {}

    def run_phase(phase):
        ordered = run_order([plan for plan in plans if plan["phase"] == phase])
        batches = run_concurrently(runner.run, ordered, params["concurrency"], runner.crashed)
        by_index.update((plan["index"], batch) for plan, batch in zip(ordered, batches))

    # The liveness precondition first and alone: a service that is down or hung is reported in one probe's time,
    # and nothing else is sent to it (the admin matrix included).
    run_phase(PHASE_PRECONDITION)
    runner.halt_if_unreachable([plan for plan in plans if plan["phase"] == PHASE_PRECONDITION])
    matrix_records = []
    thread = None
    if matrix is not None:
        def run_matrix():
            matrix_records.extend(matrix.run(client, budget=budget, deadline=deadline))
        thread = threading.Thread(target=run_matrix, name="admin-matrix")
        thread.daemon = True
        thread.start()
    run_phase(PHASE_MAIN)
    if thread is not None:
        thread.join()
    # Advisory and heavy probes last: the real API builds its OpenAPI schema on its one event loop on the first
    # /openapi.json, and every request that arrives meanwhile waits.
    run_phase(PHASE_AFTER_BLOCKING)
    records = [record for index in sorted(by_index) for record in by_index[index]]
    extra = {}
    requests_sent = runner.requests_sent
    if thread is not None:
        records.extend(matrix_records)
        extra = dict(admin_requests_sent=matrix.requests_sent)
        requests_sent += matrix.requests_sent
    records = module.secrets.value(records)
    exit_with_records(module, records, changed=False, elapsed_ms=round(watch.elapsed_ms, 1), rate_limit=budget.report(),
                      requests_sent=requests_sent, **extra)

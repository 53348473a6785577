# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The request plan shared by readiness_probe's probes (``probes``) and the admin authorization matrix
(``auth_matrix``): validated input -> one RequestSpec, and the checks of one answer -> results.

Planning: the method, whether a request writes, the expected status list, the body (``body`` or ``json_body``)
and the RequestSpec with the connection options. Judging: one result per check (``result``), the content type,
a body pattern and JSON assertions of an answer, the status of a list of results, the summary of its failures and
a redacted excerpt of the body for the evidence."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import assertions as asserts
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import ERROR, FAIL, PASS
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_transport import RequestSpec

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
MAX_SUMMARY_FAILURES = 4
# The connection options a RequestSpec takes from a module's (or a probe's) options.
CONNECTION_OPTIONS = ("timeout", "connect_timeout", "validate_certs", "ca_path", "client_cert", "client_key", "use_proxy")


class PlanError(ValueError):
    """Input that cannot be planned; the message names the option."""


# --------------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------------

def method_of(value, where, error=PlanError):
    """The upper-case HTTP method of option ``method`` (GET when not given)."""
    method = (value or "GET").upper()
    if not re.match(r"^[A-Z]+$", method):
        raise error("%s.method %r is not an HTTP method" % (where, value))
    return method


def is_write(method, write=None):
    """Whether a request may change data: option ``write`` when given, else the method's nature."""
    return bool(method in WRITE_METHODS if write is None else write)


# How a probe's status_code option and a matrix endpoint's expect entry word a bad status list.
PROBE_STATUS_MESSAGES = {
    "type": "%(where)s must be an integer or a list of integers, got %(item)r",
    "range": "%(where)s %(item)r is not an HTTP status (100-599)",
    "empty": "%(where)s must not be empty",
    "bool": "range",
}
MATRIX_STATUS_MESSAGES = {
    "type": "%(where)s must be an HTTP status or a list of them, got %(item)r",
    "range": "%(where)s: %(item)r is not an HTTP status (100-599)",
    "empty": "%(where)s must not be empty",
    "bool": "type",
}


def statuses_of(value, where, messages, error=PlanError):
    """A status or a list of them -> a list of HTTP statuses (integers 100-599); ``messages`` words the errors
    (PROBE_STATUS_MESSAGES or MATRIX_STATUS_MESSAGES)."""

    def fail(problem, item=None):
        raise error(messages[problem] % {"where": where, "item": item})
    result = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, bool):
            fail(messages["bool"], item)
        try:
            code = int(item)
        except (TypeError, ValueError):
            fail("type", item)
        if str(item).strip() != str(code) or not 100 <= code <= 599:
            fail("range", item)
        result.append(code)
    if not result:
        fail("empty")
    return result


def has_header(headers, name):
    name = name.lower()
    return any(key.lower() == name for key in headers)


def request_body(body, json_body, headers, where, error=PlanError):
    """The body to send: ``json_body`` encoded as JSON (with a JSON Content-Type unless ``headers`` give one), else
    ``body`` as it is. ``headers`` is changed in place."""
    if json_body is None:
        return body
    try:
        body = json.dumps(json_body)
    except (TypeError, ValueError) as exc:
        raise error("%s.json_body cannot be encoded as JSON: %s" % (where, exc))
    if not has_header(headers, "content-type"):
        headers["Content-Type"] = "application/json"
    return body


def request_spec(url, method, headers, body, options, follow_redirects, idempotent):
    """The RequestSpec of a planned request; ``options`` holds CONNECTION_OPTIONS."""
    return RequestSpec(url, method=method, headers=headers, body=body, timeout=options.get("timeout"),
                       connect_timeout=options.get("connect_timeout"), validate_certs=options.get("validate_certs"),
                       ca_path=options.get("ca_path"), client_cert=options.get("client_cert"),
                       client_key=options.get("client_key"), follow_redirects=follow_redirects,
                       use_proxy=options.get("use_proxy"), idempotent=idempotent)


# --------------------------------------------------------------------------------------------------
# Judging an answer
# --------------------------------------------------------------------------------------------------

def result(path, op, expected, actual, ok, note=None):
    """One check: what was looked at, how, the expected and the actual value, and whether it holds."""
    item = {"path": path, "op": op, "expected": expected, "actual": actual, "ok": bool(ok)}
    if note:
        item["note"] = note
    return item


def status_result(expected, response):
    return result("status_code", "in", expected, response.status, response.status in expected)


def content_type_result(expected, response):
    return result("header:Content-Type", "==", expected, response.content_type or None, response.content_type == expected)


def body_pattern_result(pattern, response):
    text = response.text
    return result("body", "regex", pattern.pattern, text[:80] if text else None, pattern.search(text) is not None)


def assertion_results(assertions, response):
    """The JSON assertions on the answer's body (each an error when the body is not JSON)."""
    document = response.json()
    if response.json_error:
        return asserts.not_json_results(assertions, response.json_error)
    return asserts.evaluate_all(assertions, document)


def status_of(results):
    """ERROR when a check could not be evaluated, FAIL when one failed, else PASS."""
    if any(r.get("error") for r in results):
        return ERROR
    if any(not r["ok"] for r in results):
        return FAIL
    return PASS


def describe(results):
    """The failed checks of ``results`` for a summary (the first few, then how many more)."""
    failed = [r for r in results if not r["ok"]]
    lines = [asserts.describe_failure(r) for r in failed[:MAX_SUMMARY_FAILURES]]
    if len(failed) > MAX_SUMMARY_FAILURES:
        lines.append("and %d more" % (len(failed) - MAX_SUMMARY_FAILURES))
    return "; ".join(lines)


def body_excerpt(response, secrets, limit):
    """The start of the answer's body for the evidence, with every secret masked (JSON keys sorted)."""
    if not response.body:
        return ""
    document = response.json()
    if response.json_error is None:
        text = json.dumps(secrets.value(document), sort_keys=True, default=str)
    else:
        text = secrets.text(response.text)
    if len(text) > limit:
        text = text[:limit] + "..."
    return text

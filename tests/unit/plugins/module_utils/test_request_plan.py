"""The request plan shared by readiness_probe's probes and the admin authorization matrix."""
from __future__ import annotations

import json
import re

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import request_plan as rp
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_transport import Response


def test_method_and_write():
    assert rp.method_of(None, "x") == "GET" and rp.method_of("post", "x") == "POST"
    with pytest.raises(rp.PlanError, match=r"probes\[0\]\.method 'GE T' is not an HTTP method"):
        rp.method_of("GE T", "probes[0]")
    assert rp.is_write("POST") and not rp.is_write("GET")
    assert rp.is_write("GET", True) and not rp.is_write("DELETE", False)


@pytest.mark.parametrize("messages, value, message", [
    (rp.PROBE_STATUS_MESSAGES, "abc", "w must be an integer or a list of integers, got 'abc'"),
    (rp.PROBE_STATUS_MESSAGES, [200, 700], "w 700 is not an HTTP status (100-599)"),
    (rp.PROBE_STATUS_MESSAGES, True, "w True is not an HTTP status (100-599)"),
    (rp.PROBE_STATUS_MESSAGES, [], "w must not be empty"),
    (rp.MATRIX_STATUS_MESSAGES, "ok", "w must be an HTTP status or a list of them, got 'ok'"),
    (rp.MATRIX_STATUS_MESSAGES, 99, "w: 99 is not an HTTP status (100-599)"),
    (rp.MATRIX_STATUS_MESSAGES, True, "w must be an HTTP status or a list of them, got True"),
])
def test_bad_status_lists_name_the_option(messages, value, message):
    with pytest.raises(rp.PlanError) as raised:
        rp.statuses_of(value, "w", messages)
    assert str(raised.value) == message


def test_status_lists():
    assert rp.statuses_of(204, "w", rp.PROBE_STATUS_MESSAGES) == [204]
    assert rp.statuses_of(["200", 301], "w", rp.MATRIX_STATUS_MESSAGES) == [200, 301]


def test_json_body_sets_a_content_type_unless_given():
    headers = {}
    assert json.loads(rp.request_body(None, {"a": 1}, headers, "w")) == {"a": 1}
    assert headers == {"Content-Type": "application/json"}
    headers = {"content-type": "application/vnd.x+json"}
    rp.request_body(None, [1], headers, "w")
    assert headers == {"content-type": "application/vnd.x+json"}
    headers = {}
    assert rp.request_body("raw", None, headers, "w") == "raw" and headers == {}


def test_request_spec_takes_the_connection_options():
    options = {"timeout": 3.0, "connect_timeout": 1.0, "validate_certs": False, "ca_path": "/ca", "client_cert": None,
               "client_key": None, "use_proxy": False}
    spec = rp.request_spec("http://h/x", "POST", {"A": "b"}, "{}", options, "none", idempotent=None)
    assert (spec.method, spec.timeout, spec.connect_timeout, spec.validate_certs, spec.ca_path) == ("POST", 3.0, 1.0, False, "/ca")
    assert spec.follow_redirects == "none" and spec.use_proxy is False and spec.idempotent is False


def test_checks_of_an_answer():
    response = Response(200, "OK", [("Content-Type", "application/json; charset=utf-8")], b'{"items": []}', "http://h/", 5.0)
    results = [rp.status_result([200], response), rp.content_type_result("text/csv", response),
               rp.body_pattern_result(re.compile("items"), response)]
    assert [r["ok"] for r in results] == [True, False, True]
    assert rp.status_of(results) == "fail" and rp.status_of(results[:1]) == "pass"
    assert "header:Content-Type" in rp.describe(results)

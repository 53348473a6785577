"""JMESPath assertions: every operator, typed comparison, input errors naming where they come from."""
from __future__ import annotations

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import assertions as A
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import MASK

READYZ = {
    "ok": True,
    "checks": [
        {"name": "db", "ok": True, "ms": 1.2, "detail": {"message": "database reachable"}},
        {"name": "migrations", "ok": True, "ms": 2.0,
         "detail": {"migrations_current": True, "current_version": "merge_20260224_01", "expected_heads": ["merge_20260224_01"]}},
        {"name": "jobs", "ok": True, "ms": 0.8, "detail": {"age_seconds": 4.2, "threshold_seconds": 180}},
    ],
    "count": 3,
    "ratio": 0.5,
    "label": "economy",
    "token": "tok-secret-value",
    "nothing": None,
}


def run(path, op, value=None, expected_path=None, document=None):
    raw = {"path": path, "op": op, "value": value}
    if expected_path:
        raw["expected_path"] = expected_path
    item = A.normalize(raw, "probes[0] (name 'x').assertions[0]")
    return A.evaluate(item, READYZ if document is None else document)


@pytest.mark.parametrize("path, op, value, ok", [
    ("ok", "==", True, True),
    ("ok", "==", False, False),
    ("count", "==", 3, True),
    ("count", "==", 3.0, True),
    ("label", "!=", "premium", True),
    ("label", "!=", "economy", False),
    ("count", "<", 4, True),
    ("count", "<", 3, False),
    ("count", "<=", 3, True),
    ("ratio", ">", 0.25, True),
    ("ratio", ">", 0.5, False),
    ("ratio", ">=", 0.5, True),
    ("label", "<", "f", True),
    ("label", "in", ["economy", "standard"], True),
    ("label", "in", ["premium"], False),
    ("count", "in", [1, 2, 3], True),
    ("checks[].name", "contains", "jobs", True),
    ("checks[].name", "contains", "redis", False),
    ("label", "contains", "cono", True),
    ("checks[0].detail", "contains", "message", True),
    ("checks[0].detail", "contains", "error", False),
    ("ok", "exists", None, True),
    ("missing", "exists", None, False),
    ("missing", "exists", False, True),
    ("nothing", "exists", False, True),
    ("checks", "type", "array", True),
    ("checks[0]", "type", "object", True),
    ("count", "type", "integer", True),
    ("ratio", "type", "integer", False),
    ("ratio", "type", "number", True),
    ("ok", "type", "boolean", True),
    ("label", "type", "string", True),
    ("nothing", "type", "null", True),
    ("label", "regex", "^eco", True),
    ("label", "regex", "^prem", False),
    ("checks[?name=='jobs'] | [0].detail.age_seconds", "<", 180, True),
    ("length(checks[?ok])", "==", 3, True),
])
def test_operators(path, op, value, ok):
    result = run(path, op, value)
    assert result["ok"] is ok, result
    assert set(["path", "op", "expected", "actual", "ok"]) <= set(result)


@pytest.mark.parametrize("path, op, value, note", [
    ("count", "==", "3", "type mismatch: actual is number, expected string"),
    ("label", "==", 1, "type mismatch"),
    ("ok", "==", 1, "type mismatch: actual is boolean, expected number"),
    ("count", "!=", "3", "type mismatch"),
    ("count", "<", "4", "cannot order number against string"),
    ("label", ">", 1, "cannot order string against number"),
    ("missing", "<", 1, "cannot order null against number"),
    ("count", "regex", "3", "regex needs a string"),
    ("label", "contains", 1, "cannot look for number in a string"),
    ("count", "contains", 1, "nothing to search"),
])
def test_no_silent_coercion(path, op, value, note):
    result = run(path, op, value)
    assert result["ok"] is False
    assert note in result["note"]


def test_in_is_typed():
    assert run("count", "in", ["3"])["ok"] is False
    assert run("ok", "in", [1])["ok"] is False


def test_expected_path_compares_two_values_of_the_body():
    path = "checks[?name=='jobs'] | [0].detail.age_seconds"
    limit = "checks[?name=='jobs'] | [0].detail.threshold_seconds"
    result = run(path, "<", expected_path=limit)
    assert result["ok"] is True
    assert result["expected"] == 180 and result["actual"] == 4.2 and result["expected_path"] == limit


def test_reported_actual_of_exists_and_type_is_not_the_value():
    assert run("label", "exists")["actual"] is True
    assert run("label", "type", "string")["actual"] == "string"


def test_sensitive_paths_never_show_their_value():
    result = run("token", "==", "other")
    assert result["actual"] == MASK
    assert "tok-secret-value" not in repr(result)


def test_evaluation_error_is_reported_not_raised():
    # abs() of a string: valid syntax, fails at run time: the check cannot decide
    result = run("abs(label)", "==", 1)
    assert result["ok"] is False and "cannot evaluate" in result["error"]


@pytest.mark.parametrize("raw, needle", [
    ({"path": "ok", "op": "eq", "value": True}, ".op 'eq' is not a known operator"),
    ({"path": "checks[?name==", "op": "==", "value": 1}, ".path 'checks[?name==' is not a valid JMESPath expression"),
    ({"path": "", "op": "=="}, ".path must be a non-empty JMESPath expression"),
    ({"path": "a", "op": "in", "value": "x"}, "value for op 'in' must be a list"),
    ({"path": "a", "op": "regex", "value": "(unclosed"}, "is not a valid regular expression"),
    ({"path": "a", "op": "regex", "value": 3}, "must be a string pattern"),
    ({"path": "a", "op": "type", "value": "str"}, "value for op 'type' must be one of"),
    ({"path": "a", "op": "exists", "value": "yes"}, "must be true or false"),
    ({"path": "a", "op": "<", "value": [1]}, "must be a number or a string"),
    ({"path": "a", "op": "<", "value": True}, "must be a number or a string"),
    ({"path": "a", "op": "contains"}, "value is required for op 'contains'"),
    ({"path": "a", "op": "regex", "expected_path": "b"}, "expected_path cannot be used with op 'regex'"),
    ({"path": "a", "op": "==", "expected_path": "b[?"}, "expected_path.path"),
])
def test_bad_assertions_name_the_probe_and_option(raw, needle):
    with pytest.raises(A.AssertionSpecError) as raised:
        A.normalize(raw, "probes[2] (name 'readyz').assertions[1]")
    message = str(raised.value)
    assert message.startswith("probes[2] (name 'readyz').assertions[1]")
    assert needle in message


def test_simple_paths_work_without_jmespath(monkeypatch):
    monkeypatch.setattr(A, "HAS_JMESPATH", False)
    item = A.normalize({"path": "checks[2].detail.threshold_seconds", "op": "==", "value": 180}, "w")
    assert isinstance(item["compiled"], A._SimplePath)
    assert A.evaluate(item, READYZ)["ok"] is True
    assert A.evaluate(A.normalize({"path": "checks[9].ok", "op": "exists", "value": False}, "w"), READYZ)["ok"] is True
    assert A.evaluate(A.normalize({"path": "checks[-1].name", "op": "==", "value": "jobs"}, "w"), READYZ)["ok"] is True


def test_complex_path_without_jmespath_is_an_error_result_naming_the_library(monkeypatch):
    monkeypatch.setattr(A, "HAS_JMESPATH", False)
    item = A.normalize({"path": "checks[?name=='jobs'].ok", "op": "==", "value": [True]}, "w")
    result = A.evaluate(item, READYZ)
    assert result["ok"] is False
    assert "jmespath" in result["error"]


def test_not_json_results_fail_every_assertion():
    items = A.normalize_all([{"path": "a", "op": "==", "value": 1}, {"path": "b", "op": "exists"}], "w")
    results = A.not_json_results(items, "body is not JSON")
    assert [r["ok"] for r in results] == [False, False]
    assert all(r["note"] == "body is not JSON" for r in results)


@pytest.mark.parametrize("spec, actual, ok", [
    ({"name": "X-Frame-Options", "value": "DENY"}, "DENY", True),
    ({"name": "X-Frame-Options", "value": "DENY"}, "deny", True),
    ({"name": "X-Frame-Options", "value": "DENY"}, "SAMEORIGIN", False),
    ({"name": "X-Frame-Options", "value": "DENY"}, None, False),
    ({"name": "Strict-Transport-Security", "regex": r"max-age=[1-9][0-9]*"}, "max-age=31536000", True),
    ({"name": "Strict-Transport-Security", "regex": r"max-age=[1-9][0-9]*"}, "max-age=0", False),
    ({"name": "X-Request-ID"}, "abc", True),
    ({"name": "X-Request-ID"}, None, False),
    ({"name": "Server", "present": False}, None, True),
    ({"name": "Server", "present": False}, "nginx", False),
])
def test_header_checks(spec, actual, ok):
    item = A.normalize_header(spec, "probes[0].required_headers[0]")
    result = A.check_header(item, actual)
    assert result["ok"] is ok
    assert result["path"] == "header:%s" % spec["name"]


def test_sensitive_header_value_is_masked():
    item = A.normalize_header({"name": "Set-Cookie", "regex": "Secure"}, "w")
    assert A.check_header(item, "session=abc; Secure", sensitive=True)["actual"] == MASK


@pytest.mark.parametrize("spec, needle", [
    ({"value": "x"}, "needs a name"),
    ({"name": "A", "value": "x", "regex": "y"}, "mutually exclusive"),
    ({"name": "A", "regex": "("}, "not a valid regular expression"),
    ({"name": "A", "present": False, "value": "x"}, "present=false"),
])
def test_bad_header_specs(spec, needle):
    with pytest.raises(A.AssertionSpecError) as raised:
        A.normalize_header(spec, "probes[1].required_headers[0]")
    assert needle in str(raised.value)


def test_describe_failure_is_one_readable_line():
    line = A.describe_failure({"path": "status_code", "op": "in", "expected": [200], "actual": 503, "ok": False})
    assert line == "status_code in [200] (actual 503)"

# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Assertions on HTTP answers: JMESPath expressions over a JSON body with typed comparison, and
checks of response headers. Every check reports ``{path, op, expected, actual, ok}`` (plus ``note``
when a comparison was refused, e.g. a number compared with a string: that is never silently coerced).

jmespath is imported guarded. Plain dotted paths (``status``, ``detail.items[0].ok``) are resolved
without it, so the built-in probes work where jmespath is not installed; any other expression then
gives an ``error`` result that names the missing library."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import traceback

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import MASK, SENSITIVE_KEY

JMESPATH_IMPORT_ERROR = None
try:
    import jmespath
    import jmespath.exceptions
    HAS_JMESPATH = True
except ImportError:  # pragma: no cover - depends on the node
    jmespath = None
    HAS_JMESPATH = False
    JMESPATH_IMPORT_ERROR = traceback.format_exc()

OPERATORS = ("==", "!=", "<", "<=", ">", ">=", "in", "contains", "exists", "type", "regex")
ORDERING = ("<", "<=", ">", ">=")
TYPE_NAMES = ("string", "number", "integer", "boolean", "array", "object", "null")
MISSING_JMESPATH = missing_required_lib("jmespath")

_SIMPLE_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*|\[-?[0-9]+\])*$")
_SIMPLE_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(-?[0-9]+)\]")


class AssertionSpecError(ValueError):
    """An assertion that cannot be evaluated as written; the message names where it came from."""


class _SimplePath:
    """A dotted path with list indexes, resolved like JMESPath resolves it (missing -> None)."""

    def __init__(self, expression):
        self.expression = expression
        self.tokens = [(m.group(1), m.group(2)) for m in _SIMPLE_TOKEN.finditer(expression)]

    def search(self, document):
        value = document
        for key, index in self.tokens:
            if key is not None:
                value = value.get(key) if isinstance(value, dict) else None
            else:
                position = int(index)
                if isinstance(value, list) and -len(value) <= position < len(value):
                    value = value[position]
                else:
                    value = None
            if value is None:
                return None
        return value


class _NeedsJmespath:
    def __init__(self, expression):
        self.expression = expression

    def search(self, document):
        raise MissingLibrary(MISSING_JMESPATH)


class MissingLibrary(Exception):
    pass


def assertion_argument_spec():
    """The argument spec of one list of assertions, shared by every module that takes them."""
    return dict(type="list", elements="dict", options=dict(
        path=dict(type="str", required=True),
        op=dict(type="str", default="=="),
        value=dict(type="raw"),
        expected_path=dict(type="str"),
    ))


def compile_path(expression, where):
    """A compiled expression with a ``search(document)`` method; AssertionSpecError when malformed."""
    if not isinstance(expression, str) or not expression.strip():
        raise AssertionSpecError("%s.path must be a non-empty JMESPath expression" % where)
    expression = expression.strip()
    if HAS_JMESPATH:
        try:
            return jmespath.compile(expression)
        except jmespath.exceptions.JMESPathError as exc:
            raise AssertionSpecError("%s.path %r is not a valid JMESPath expression: %s"
                                     % (where, expression, " ".join(to_native(exc).split())))
    if _SIMPLE_PATH.match(expression):
        return _SimplePath(expression)
    return _NeedsJmespath(expression)


def type_name(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def normalize(raw, where):
    """Validate one assertion ``{path, op, value | expected_path}``; returns a ready-to-run dict."""
    if not isinstance(raw, dict):
        raise AssertionSpecError("%s must be a dict with path, op and value" % where)
    op = raw.get("op") or "=="
    if op not in OPERATORS:
        raise AssertionSpecError("%s.op %r is not a known operator; use one of: %s" % (where, op, ", ".join(OPERATORS)))
    item = {"path": raw.get("path"), "op": op, "value": raw.get("value"), "expected_path": raw.get("expected_path")}
    item["compiled"] = compile_path(item["path"], where)
    if item["expected_path"] is not None:
        if op in ("exists", "type", "regex"):
            raise AssertionSpecError("%s.expected_path cannot be used with op %r" % (where, op))
        item["compiled_expected"] = compile_path(item["expected_path"], where + ".expected_path")
        return item
    value = item["value"]
    if op == "exists":
        if value is None:
            item["value"] = True
        elif not isinstance(value, bool):
            raise AssertionSpecError("%s.value for op 'exists' must be true or false, got %r" % (where, value))
    elif op == "type":
        if value not in TYPE_NAMES:
            raise AssertionSpecError("%s.value for op 'type' must be one of %s, got %r" % (where, ", ".join(TYPE_NAMES), value))
    elif op == "regex":
        if not isinstance(value, str):
            raise AssertionSpecError("%s.value for op 'regex' must be a string pattern" % where)
        try:
            item["pattern"] = re.compile(value)
        except re.error as exc:
            raise AssertionSpecError("%s.value %r is not a valid regular expression: %s" % (where, value, exc))
    elif op == "in":
        if not isinstance(value, (list, tuple)):
            raise AssertionSpecError("%s.value for op 'in' must be a list" % where)
    elif op in ORDERING:
        if type_name(value) not in ("number", "string"):
            raise AssertionSpecError("%s.value for op %r must be a number or a string, got %s" % (where, op, type_name(value)))
    elif op == "contains":
        if value is None:
            raise AssertionSpecError("%s.value is required for op 'contains'" % where)
    elif "value" not in raw:
        raise AssertionSpecError("%s.value is required for op %r (use null to compare with null)" % (where, op))
    return item


def normalize_all(raws, where):
    return [normalize(raw, "%s[%d]" % (where, index)) for index, raw in enumerate(raws or [])]


def _equal(actual, expected):
    """Typed equality: (ok, note). 1 == 1.0, but 1 != "1" and true != 1, with a note saying why."""
    ka, ke = type_name(actual), type_name(expected)
    if ka != ke and "null" not in (ka, ke):
        return False, "type mismatch: actual is %s, expected %s" % (ka, ke)
    return actual == expected, None


def compare(op, actual, expected, pattern=None):
    """(ok, note, reported_actual) for one operator; never coerces between types."""
    if op == "==":
        ok, note = _equal(actual, expected)
        return ok, note, actual
    if op == "!=":
        ok, note = _equal(actual, expected)
        if note:
            return False, note, actual
        return not ok, None, actual
    if op in ORDERING:
        ka, ke = type_name(actual), type_name(expected)
        if ka != ke or ka not in ("number", "string"):
            return False, "cannot order %s against %s" % (ka, ke), actual
        result = {"<": actual < expected, "<=": actual <= expected, ">": actual > expected, ">=": actual >= expected}[op]
        return result, None, actual
    if op == "in":
        if type_name(expected) != "array":
            return False, "expected value is %s, not an array" % type_name(expected), actual
        return any(_equal(actual, option)[0] for option in expected), None, actual
    if op == "contains":
        kind = type_name(actual)
        if kind == "array":
            return any(_equal(item, expected)[0] for item in actual), None, actual
        if kind == "string":
            if not isinstance(expected, str):
                return False, "cannot look for %s in a string" % type_name(expected), actual
            return expected in actual, None, actual
        if kind == "object":
            if not isinstance(expected, str):
                return False, "an object contains keys (strings), not %s" % type_name(expected), actual
            return expected in actual, None, sorted(actual.keys())
        return False, "nothing to search: actual is %s" % kind, actual
    if op == "exists":
        present = actual is not None
        return present == bool(expected), None, present
    if op == "type":
        kind = type_name(actual)
        if expected == "integer":
            is_int = kind == "number" and isinstance(actual, int)
            return is_int, None, "integer" if is_int else kind
        return kind == expected, None, kind
    if op == "regex":
        if not isinstance(actual, str):
            return False, "regex needs a string, actual is %s" % type_name(actual), actual
        pattern = pattern or re.compile(expected)
        return pattern.search(actual) is not None, None, actual
    return False, "unknown operator %r" % op, actual


def _mask_actual(path, value):
    if path and SENSITIVE_KEY.search(path) and isinstance(value, str) and value:
        return MASK
    return value


def evaluate(item, document):
    """Run one normalized assertion against a parsed JSON document."""
    path = item["path"]
    result = {"path": path, "op": item["op"], "expected": item.get("value"), "actual": None, "ok": False}
    try:
        actual = item["compiled"].search(document)
        expected = item.get("value")
        if item.get("compiled_expected") is not None:
            expected = item["compiled_expected"].search(document)
            result["expected_path"] = item["expected_path"]
            result["expected"] = expected
    except MissingLibrary as exc:
        result["error"] = str(exc)
        return result
    except Exception as exc:  # pylint: disable=broad-except
        # jmespath raises on e.g. a function applied to the wrong type: the check cannot decide.
        result["error"] = "cannot evaluate %r: %s" % (path, " ".join(to_native(exc).split()))
        return result
    ok, note, reported = compare(item["op"], actual, expected, item.get("pattern"))
    result["ok"] = bool(ok)
    result["actual"] = _mask_actual(path, reported)
    if note:
        result["note"] = note
    return result


def evaluate_all(items, document):
    return [evaluate(item, document) for item in items]


def not_json_results(items, reason):
    """When the body is not JSON, every JSON assertion fails with the reason (nothing to search)."""
    return [{"path": item["path"], "op": item["op"], "expected": item.get("value"), "actual": None, "ok": False,
             "note": reason} for item in items]


# --------------------------------------------------------------------------------------------------
# Response headers
# --------------------------------------------------------------------------------------------------

def normalize_header(raw, where):
    """``{name, value}`` (case-insensitive equality), ``{name, regex}``, ``{name, present: false}``
    or just ``{name}`` (must be present)."""
    if not isinstance(raw, dict) or not raw.get("name"):
        raise AssertionSpecError("%s needs a name" % where)
    item = {"name": raw["name"], "value": raw.get("value"), "regex": raw.get("regex"),
            "present": raw.get("present", True) if raw.get("present") is not None else True}
    if item["value"] is not None and item["regex"] is not None:
        raise AssertionSpecError("%s: value and regex are mutually exclusive" % where)
    if item["regex"] is not None:
        try:
            item["pattern"] = re.compile(item["regex"])
        except re.error as exc:
            raise AssertionSpecError("%s.regex %r is not a valid regular expression: %s" % (where, item["regex"], exc))
    if not item["present"] and (item["value"] is not None or item["regex"] is not None):
        raise AssertionSpecError("%s: present=false cannot be combined with value or regex" % where)
    return item


def check_header(item, actual, sensitive=False):
    """One header expectation against the response's value (None when absent)."""
    name = item["name"]
    shown = MASK if (sensitive and actual) else actual
    if not item["present"]:
        return {"path": "header:%s" % name, "op": "exists", "expected": False, "actual": actual is not None,
                "ok": actual is None}
    if item.get("pattern") is not None:
        ok = actual is not None and item["pattern"].search(actual) is not None
        return {"path": "header:%s" % name, "op": "regex", "expected": item["regex"], "actual": shown, "ok": ok}
    if item["value"] is not None:
        ok = actual is not None and actual.strip().lower() == str(item["value"]).strip().lower()
        return {"path": "header:%s" % name, "op": "==", "expected": item["value"], "actual": shown, "ok": ok}
    return {"path": "header:%s" % name, "op": "exists", "expected": True, "actual": actual is not None,
            "ok": actual is not None}


def describe_failure(result):
    """A short human line for a failed check: ``status_code in [200] (actual 503)``."""
    expected = result.get("expected")
    text = "%s %s %s (actual %s)" % (result.get("path"), result.get("op"), _short(expected), _short(result.get("actual")))
    if result.get("error"):
        text = "%s: %s" % (result.get("path"), result["error"])
    elif result.get("note"):
        text += ": " + result["note"]
    return text


def _short(value, limit=80):
    if isinstance(value, str):
        text = "'%s'" % value
    else:
        try:
            text = json.dumps(value, sort_keys=True, default=str)
        except (TypeError, ValueError):
            text = to_native(value)
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return text

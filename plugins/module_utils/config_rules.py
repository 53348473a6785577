# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rule engine of config_audit: rules as data (normalised and validated, the policy rules its options
stand for), each evaluated on the parsed env file, and the records of the audit, one per criterion.
Evidence and summaries name keys and rule outcomes, never values."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import os
import re

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    CRITERION_PATTERN, ERROR, FAIL, PASS, Stopwatch, make_record)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.env_file import (
    KEY_NAME, MAX_BYTES, EnvFileError, parse_env, parse_list, to_bool)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import SENSITIVE_SETTING

ENV_PRESENT = "config.env_present"
CRITERIA_ORDER = ("config.prod_mode", "config.secrets", "config.basic_auth", "config.stripe", "config.email",
                  "config.storage", "config.metrics_token", "config.admin_flags")
KNOWN_ROLES = ("owner", "admin", "dispatcher", "accountant", "viewer", "worker")
_RULE_FIELDS = frozenset(("key", "criterion", "required", "min_length", "not_in", "prefix", "equals", "choices", "pattern",
                          "boolean", "list_no_wildcard", "when_key", "when_value", "when_default", "blocking", "description"))


def policy_rules(app_env="prod", incident_mode=False, admin_mfa_policy="required", basic_auth_roles=("admin",)):
    """The rules config_audit's policy options stand for: APP_ENV, the Basic Auth pairs of every known role
    (required for the roles in use) and the admin flags. The service's other rules are data
    (``base_rules``; the preflight role's ``preflight_config_default_rules``)."""
    rules = [dict(key="APP_ENV", criterion="config.prod_mode", equals=app_env)]
    in_use = [role.lower() for role in basic_auth_roles]
    for role in list(KNOWN_ROLES) + [r for r in in_use if r not in KNOWN_ROLES]:
        user, password = "%s_BASIC_USERNAME" % role.upper(), "%s_BASIC_PASSWORD" % role.upper()
        if role in in_use:
            rules.append(dict(key=user, criterion="config.basic_auth", description="%s role in use" % role))
            rules.append(dict(key=password, criterion="config.basic_auth", min_length=12, not_in=True,
                              description="%s role in use" % role))
        else:
            rules.append(dict(key=password, criterion="config.basic_auth", min_length=12, not_in=True,
                              when_key=user, description="%s username is set" % role))
            rules.append(dict(key=user, criterion="config.basic_auth", when_key=password,
                              description="%s password is set" % role))
    if not incident_mode:
        rules.append(dict(key="ADMIN_READ_ONLY", criterion="config.admin_flags", required=False, boolean=False,
                          description="admin writes enabled (no incident declared)"))
    if admin_mfa_policy == "required":
        rules.append(dict(key="ADMIN_MFA_REQUIRED", criterion="config.admin_flags", boolean=True))
    elif admin_mfa_policy == "not_required":
        rules.append(dict(key="ADMIN_MFA_REQUIRED", criterion="config.admin_flags", required=False, boolean=False))
    return rules


class RuleError(Exception):
    pass


def _as_bool(value, where):
    if isinstance(value, bool):
        return value
    try:
        return boolean(value, strict=True)
    except TypeError:
        raise RuleError("%s: must be true or false" % where)


def _as_str_list(value, where, allow_single=True):
    if isinstance(value, str) and allow_single:
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(item, str) and item for item in value):
        raise RuleError("%s: must be a non-empty list of text" % where)
    return list(value)


def normalize_rule(raw, index, placeholders, origin="rules"):
    where = "%s[%d]" % (origin, index)
    if not isinstance(raw, dict):
        raise RuleError("%s: a rule must be a mapping" % where)
    unknown = sorted(str(k) for k in raw if k not in _RULE_FIELDS)
    if unknown:
        raise RuleError("%s: unknown field(s) %s" % (where, ", ".join(unknown)))
    if raw.get("key") in (None, "", []):
        raise RuleError("%s.key: missing" % where)
    keys = _as_str_list(raw["key"], "%s.key" % where)
    for key in keys:
        if not KEY_NAME.match(key):
            raise RuleError("%s.key: %s is not an env key name" % (where, key[:60]))
    criterion = raw.get("criterion")
    if not isinstance(criterion, str) or not CRITERION_PATTERN.match(criterion):
        raise RuleError("%s.criterion: %s" % (where, "missing" if not criterion else "not a criterion id (like config.secrets)"))
    if criterion == ENV_PRESENT:
        raise RuleError("%s.criterion: %s is reported by the module itself" % (where, ENV_PRESENT))
    rule = {"keys": [k.upper() for k in keys], "criterion": criterion, "index": index, "origin": origin}
    rule["required"] = _as_bool(raw.get("required", True), "%s.required" % where)
    rule["blocking"] = _as_bool(raw.get("blocking", True), "%s.blocking" % where)
    rule["list_no_wildcard"] = _as_bool(raw.get("list_no_wildcard", False), "%s.list_no_wildcard" % where)
    min_length = raw.get("min_length")
    if min_length is not None:
        if isinstance(min_length, bool):
            raise RuleError("%s.min_length: must be a whole number >= 0" % where)
        try:
            min_length = int(min_length)
        except (TypeError, ValueError):
            raise RuleError("%s.min_length: must be a whole number >= 0" % where)
        if min_length < 0:
            raise RuleError("%s.min_length: must be a whole number >= 0" % where)
    rule["min_length"] = min_length
    not_in = raw.get("not_in")
    if not_in is None or not_in is False:
        rule["not_in"] = None
    elif not_in is True or (isinstance(not_in, str) and to_bool(not_in) is True):
        rule["not_in"] = list(placeholders)
    else:
        rule["not_in"] = _as_str_list(not_in, "%s.not_in" % where)
    rule["prefix"] = _as_str_list(raw["prefix"], "%s.prefix" % where) if raw.get("prefix") is not None else None
    rule["choices"] = _as_str_list(raw["choices"], "%s.choices" % where) if raw.get("choices") is not None else None
    for field in ("equals", "pattern", "when_key", "when_default", "description"):
        value = raw.get(field)
        if value is not None and not isinstance(value, str):
            raise RuleError("%s.%s: must be text" % (where, field))
        rule[field] = value
    if rule["pattern"] is not None:
        try:
            rule["regex"] = re.compile(rule["pattern"])
        except re.error as exc:
            raise RuleError("%s.pattern: not a valid regular expression (%s)" % (where, exc))
    boolean_value = raw.get("boolean")
    rule["boolean"] = None if boolean_value is None else _as_bool(boolean_value, "%s.boolean" % where)
    if rule["when_key"] is not None:
        if not KEY_NAME.match(rule["when_key"]):
            raise RuleError("%s.when_key: not an env key name" % where)
        rule["when_key"] = rule["when_key"].upper()
    when_value = raw.get("when_value")
    if when_value is not None:
        if rule["when_key"] is None:
            raise RuleError("%s.when_value: needs when_key" % where)
        if isinstance(when_value, (bool, int, float, str)):
            when_value = [when_value]
        if not isinstance(when_value, list) or not when_value or \
                not all(isinstance(v, (bool, int, float, str)) for v in when_value):
            raise RuleError("%s.when_value: must be a value or a list of values" % where)
    rule["when_value"] = when_value
    return rule


def _condition(rule, env):
    """(applies, reason) of a rule's when_key/when_value."""
    if rule["when_key"] is None:
        return True, None
    actual = env.get(rule["when_key"])
    if actual is None or not actual.strip():
        actual = rule["when_default"]
    if rule["when_value"] is None:
        applies = bool(actual and actual.strip())
        return applies, None if applies else "%s is not set" % rule["when_key"]
    for expected in rule["when_value"]:
        if isinstance(expected, bool) or (isinstance(expected, str) and to_bool(expected) is not None
                                          and to_bool(actual) is not None):
            wanted = expected if isinstance(expected, bool) else to_bool(expected)
            if to_bool(actual) is wanted:
                return True, None
        elif actual is not None and str(expected).strip().lower() == actual.strip().lower():
            return True, None
    shown = ", ".join(str(v).lower() if isinstance(v, bool) else str(v) for v in rule["when_value"])
    return False, "%s is not %s" % (rule["when_key"], shown)


def _check_value(rule, value):
    """Problems of one present value; texts name the rule, never the value."""
    problems = []
    text = value.strip()
    if rule["min_length"] is not None and len(text) < rule["min_length"]:
        problems.append("shorter than %d" % rule["min_length"])
    if rule["not_in"]:
        lowered = text.lower()
        if any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in rule["not_in"]):
            problems.append("is a default or placeholder value")
    if rule["prefix"] and not any(text.startswith(p) for p in rule["prefix"]):
        problems.append("does not start with an allowed prefix (%s)" % ", ".join(rule["prefix"]))
    if rule["equals"] is not None and text.lower() != rule["equals"].strip().lower():
        problems.append("is not the expected value%s" % ("" if _sensitive(rule) else " %r" % rule["equals"]))
    if rule["choices"] and text.lower() not in [c.strip().lower() for c in rule["choices"]]:
        problems.append("is not one of %s" % ", ".join(rule["choices"]))
    if rule.get("regex") is not None and not rule["regex"].search(text):
        problems.append("does not match the expected pattern")
    if rule["boolean"] is not None:
        parsed = to_bool(text)
        if parsed is None:
            problems.append("is not a boolean")
        elif parsed is not rule["boolean"]:
            problems.append("is not %s" % str(rule["boolean"]).lower())
    if rule["list_no_wildcard"]:
        items = parse_list(text)
        if items is None:
            problems.append("is not a valid list")
        elif not items:
            problems.append("is an empty list")
        elif any(item == "*" or "*" in item for item in items):
            problems.append("contains a wildcard entry")
    return problems


def _sensitive(rule):
    return any(SENSITIVE_SETTING.search(key) for key in rule["keys"])


def evaluate_rule(rule, env):
    """One rule -> {key, outcome: pass|fail|warn|not_applicable, detail}."""
    label = " or ".join(rule["keys"])
    entry = {"key": label, "outcome": PASS, "detail": ""}
    if rule.get("description"):
        entry["rule"] = rule["description"]
    applies, why = _condition(rule, env)
    if not applies:
        entry.update(outcome="not_applicable", detail=why)
        return entry
    present = [k for k in rule["keys"] if env.get(k) is not None and env.get(k).strip()]
    if not present:
        if rule["required"]:
            entry.update(outcome=FAIL if rule["blocking"] else "warn",
                         detail="not set" if len(rule["keys"]) == 1 else "none of them is set")
        else:
            entry.update(detail="not set (optional, the application default applies)")
        return entry
    failures = []
    for key in present:
        problems = _check_value(rule, env[key])
        if not problems:
            entry["detail"] = "set and valid" if len(rule["keys"]) == 1 else "%s set and valid" % key
            return entry
        failures.append((key, problems))
    if len(rule["keys"]) == 1:
        detail = "; ".join(failures[0][1])
    else:
        detail = "; ".join("%s %s" % (key, ", ".join(problems)) for key, problems in failures)
    entry.update(outcome=FAIL if rule["blocking"] else "warn", detail=detail)
    return entry


def build_rules(params):
    """The rules of an audit: with ``default_rules``, the policy rules and then ``base_rules`` (within a
    criterion, in that order), less those a rule of ``rules`` with the same keys and criterion replaces;
    then ``rules``."""
    placeholders = params["placeholders"] or []
    user_rules = [normalize_rule(raw, index, placeholders) for index, raw in enumerate(params["rules"] or [])]
    rules = []
    if params["default_rules"]:
        replaced = set((tuple(r["keys"]), r["criterion"]) for r in user_rules)
        builtin = [("default_rules", policy_rules(params["app_env"], params["incident_mode"], params["admin_mfa_policy"],
                                                  params["basic_auth_roles"] or [])),
                   ("base_rules", params.get("base_rules") or [])]
        for origin, raws in builtin:
            for index, raw in enumerate(raws):
                rule = normalize_rule(raw, index, placeholders, origin=origin)
                if (tuple(rule["keys"]), rule["criterion"]) not in replaced:
                    rules.append(rule)
    return rules + user_rules


def check_options(params):
    """The options argument_spec cannot check: criteria ids, the blocking map (returned with its values as
    booleans) and role names. Raises ValueError naming the option."""
    for index, criterion in enumerate(params["criteria"]):
        if not CRITERION_PATTERN.match(criterion):
            raise ValueError("criteria[%d]: %s is not a criterion id (like config.secrets)" % (index, criterion[:60]))
    blocking = {}
    for criterion, value in (params["blocking"] or {}).items():
        if not CRITERION_PATTERN.match(str(criterion)):
            raise ValueError("blocking: %s is not a criterion id (like config.stripe)" % str(criterion)[:60])
        try:
            blocking[str(criterion)] = _as_bool(value, "blocking.%s" % criterion)
        except RuleError as exc:
            raise ValueError(str(exc))
    for index, role in enumerate(params["basic_auth_roles"] or []):
        if not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", role):
            raise ValueError("basic_auth_roles[%d]: %s is not a role name (like admin)" % (index, role[:60]))
    return blocking


def read_env(path):
    """``(env, notes, problem, status)`` of the env file: env None with the problem when it cannot be used."""
    env, notes, problem, status = None, [], None, PASS
    try:
        if not os.path.exists(path):
            problem, status = "does not exist", FAIL
        elif not os.path.isfile(path):
            problem, status = "is not a regular file", FAIL
        elif os.path.getsize(path) > MAX_BYTES:
            problem, status = "is larger than %d MiB" % (MAX_BYTES // (1024 * 1024)), FAIL
        else:
            with open(path, "rb") as handle:
                text = handle.read().decode("utf-8", "replace")
            env, notes = parse_env(text)
            if not any(v.strip() for v in env.values()):
                problem, status, env = "assigns no value (empty)", FAIL, None
    except EnvFileError as exc:
        problem, status, env = "cannot be parsed as docker compose does: %s" % exc, FAIL, None
    except (IOError, OSError) as exc:
        problem, status, env = "cannot be read: %s" % (exc.strerror or type(exc).__name__), ERROR, None
    return env, notes, problem, status


def _plural(count):
    return "" if count == 1 else "s"


def criterion_record(criterion, rules, env, path, blocking, watch):
    """The record of one criterion from the outcomes of its rules on ``env``."""
    outcomes = [evaluate_rule(rule, env) for rule in rules]
    failed = [o for o in outcomes if o["outcome"] == FAIL]
    warned = [o for o in outcomes if o["outcome"] == "warn"]
    applied = [o for o in outcomes if o["outcome"] != "not_applicable"]
    evidence = {
        "path": path,
        "rules": outcomes,
        "failed": sorted(set(o["key"] for o in failed)),
        "warnings": sorted(set(o["key"] for o in warned)),
    }
    if failed:
        summary = "%d of %d rule%s failed: %s" % (len(failed), len(applied), _plural(len(applied)), "; ".join(
            "%s %s" % (o["key"], o["detail"]) for o in failed))
        status = FAIL
    else:
        summary = ("%d rule%s passed" % (len(applied), _plural(len(applied)))) if applied else "no rule applies (%s)" % "; ".join(
            sorted(set(o["detail"] for o in outcomes)))
        if warned:
            summary += "; warnings: %s" % "; ".join("%s %s" % (o["key"], o["detail"]) for o in warned)
        status = PASS
    return make_record(criterion, status, summary, evidence=evidence, blocking=blocking, duration_ms=watch.elapsed_ms)


def audit(params, clock=None):
    """Read the env file and build the records. Returns ``(records, path)``."""
    path = params["path"] or os.path.join(params["app_dir"], ".env")
    rules = build_rules(params)
    wanted = params["criteria"] or []
    order = list(CRITERIA_ORDER)
    for rule in rules:
        if rule["criterion"] not in order:
            order.append(rule["criterion"])
    criteria = [c for c in order if any(r["criterion"] == c for r in rules) and (not wanted or c in wanted)]
    blocking_by = params["blocking"] or {}

    watch = Stopwatch() if clock is None else Stopwatch(clock=clock)
    env, notes, problem, status = read_env(path)
    evidence = {"path": path}
    if env is not None:
        evidence.update(keys=len(env), notes=notes[:20])
        summary = "%s present, %d keys" % (path, len(env))
    else:
        summary = "%s %s" % (path, problem)
    records = [make_record(ENV_PRESENT, status, summary, evidence=evidence,
                           blocking=blocking_by.get(ENV_PRESENT, True), duration_ms=watch.elapsed_ms)]

    for criterion in criteria:
        watch = Stopwatch() if clock is None else Stopwatch(clock=clock)
        blocking = blocking_by.get(criterion, True)
        mine = [r for r in rules if r["criterion"] == criterion]
        if env is None:
            records.append(make_record(criterion, ERROR, "not evaluated: the env file %s" % problem,
                                       evidence={"path": path, "keys": sorted(set(k for r in mine for k in r["keys"]))},
                                       blocking=blocking, duration_ms=watch.elapsed_ms))
            continue
        records.append(criterion_record(criterion, mine, env, path, blocking, watch))
    return records, path

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: config_audit
short_description: Audit the service's env file against production rules (criteria config.*)
version_added: 0.1.0
description:
  - Reads the service's env file on the app host (the C(.env) that docker compose and the application load),
    parses it the way docker compose does (comments, C(export), single and double quotes, C(=) inside values,
    C(${VAR}) expansion from keys defined earlier in the file), and applies rules given as data.
  - A built-in rule set (O(default_rules)) matches what the CleanWithSnapshot API enforces at start in production
    and what the release runbooks ask for (C(config.prod_mode), C(config.secrets), C(config.basic_auth),
    C(config.stripe), C(config.email), C(config.storage), C(config.metrics_token), C(config.admin_flags)).
  - Returns one check record per criterion plus C(config.env_present). A missing or empty env file fails
    C(config.env_present) and gives every other criterion an C(error) record (it could not be decided).
  - The evidence lists key names and rule outcomes only. It never holds a value, a prefix of a value, or the length
    of a value (a short secret is reported as C(shorter than 32)).
  - Keys are matched case-insensitively, as the application's settings loader does.
  - Read-only; runs for real in check mode.
author:
  - CleanWithSnapshot release engineering (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  path:
    description:
      - The env file to audit.
      - Defaults to C(.env) in O(app_dir).
    type: path
  app_dir:
    description: The service's deployment directory (the repository checkout holding C(.env)).
    type: path
    default: /opt/cleaning
  default_rules:
    description:
      - Apply the built-in CleanWithSnapshot rule set. O(rules) are added to it; a rule of O(rules) with the same
        O(rules[].key) and O(rules[].criterion) as built-in rules replaces those built-in rules.
    type: bool
    default: true
  rules:
    description:
      - Extra or replacing rules. Each rule checks one key (or the first satisfying key of a list) for one criterion.
    type: list
    elements: dict
    default: []
    suboptions:
      key:
        description:
          - The env key checked, or a list of keys of which at least one must satisfy the rule
            (for example C([TRUSTED_PROXY_IPS, TRUSTED_PROXY_CIDRS])).
        type: raw
        required: true
      criterion:
        description: The criterion id the rule serves, for example C(config.secrets).
        type: str
        required: true
      required:
        description: The key must be set to a non-empty value. When false, an absent key passes and the other checks
          apply only to a value that is present.
        type: bool
        default: true
      min_length:
        description: The value has at least this many characters (surrounding white space ignored).
        type: int
      not_in:
        description:
          - Values refused, as case-insensitive shell-style patterns (C(dev-*)).
          - C(true) uses O(placeholders).
        type: raw
      prefix:
        description: The value starts with one of these.
        type: list
        elements: str
      equals:
        description: The value equals this (case-insensitive).
        type: str
      choices:
        description: The value is one of these (case-insensitive).
        type: list
        elements: str
      pattern:
        description: A regular expression the value must contain a match of.
        type: str
      boolean:
        description: The value is a boolean (true/false, 1/0, yes/no, on/off) equal to this.
        type: bool
      list_no_wildcard:
        description: The value is a non-empty list (comma-separated or a JSON array) without a C(*) entry.
        type: bool
        default: false
      when_key:
        description: Apply the rule only when this key is set (and, with O(rules[].when_value), has that value).
        type: str
      when_value:
        description:
          - The value (or list of values) O(rules[].when_key) must have for the rule to apply; compared as booleans
            when it is a boolean, else case-insensitively.
        type: raw
      when_default:
        description: The value O(rules[].when_key) has when it is absent from the file (the application's default).
        type: str
      blocking:
        description: A failing rule fails its criterion. When false, a failure is reported as a warning only.
        type: bool
        default: true
      description:
        description: A human description shown in the evidence.
        type: str
  criteria:
    description:
      - Audit only these criteria (C(config.env_present) is always reported). Default, every criterion that has rules.
    type: list
    elements: str
    default: []
  blocking:
    description:
      - Per-environment blocking flag by criterion id, for example C(config.stripe=false) on staging.
      - Criteria not named block.
    type: dict
    default: {}
  app_env:
    description: The value C(APP_ENV) must have.
    type: str
    default: prod
  incident_mode:
    description: An incident is declared, C(ADMIN_READ_ONLY=true) is then accepted.
    type: bool
    default: false
  admin_mfa_policy:
    description:
      - What C(ADMIN_MFA_REQUIRED) must be. C(required) (true, the runbook's production recommendation),
        C(not_required) (false) or C(any) (not checked).
    type: str
    choices: [required, not_required, any]
    default: required
  basic_auth_roles:
    description:
      - Roles whose Basic Auth pair must be configured (username set, password of at least 12 characters, not a placeholder).
      - The pairs of the other roles (owner, admin, dispatcher, accountant, viewer, worker) are checked when half of them is set.
    type: list
    elements: str
    default: [admin]
  placeholders:
    description: Default and placeholder values refused for secrets and passwords (case-insensitive shell-style patterns).
    type: list
    elements: str
    default: ['change-me*', 'changeme*', 'change_me*', 'replace-me*', 'replaceme*', 'secret', 'password', 'passw0rd',
              'admin', 'root', 'test', 'todo', 'tbd', 'xxx*', '123456*', 'qwerty*', 'dev-*', 'example*', 'your-*',
              'your_*', '<*>', '${*}']
attributes:
  check_mode:
    support: full
    details: Read-only, the audit runs for real in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Only the file is read. Values that docker compose would take from the shell environment (a C(KEY) line without
    C(=), or an expansion of a variable the file does not define) count as not set.
seealso:
  - module: cleanwithsnapshot.release.gate
"""

EXAMPLES = r"""
- name: Audit the production env file with the built-in rules
  cleanwithsnapshot.release.config_audit:
    app_dir: /opt/cleaning
    basic_auth_roles: [owner, admin, viewer]
  register: config_result

- name: Staging, Stripe and email do not block; an incident is declared
  cleanwithsnapshot.release.config_audit:
    path: /srv/staging/.env
    blocking:
      config.stripe: false
      config.email: false
    incident_mode: true

- name: Extra rules as data
  cleanwithsnapshot.release.config_audit:
    rules:
      - key: REDIS_URL
        criterion: config.prod_mode
        pattern: '^rediss?://'
        description: distributed rate limiting (multi-instance)
      - key: TURNSTILE_SECRET_KEY
        criterion: config.secrets
        when_key: CAPTCHA_MODE
        when_value: turnstile
        min_length: 20
        not_in: true
"""

RETURN = r"""
records:
  description: One check record per criterion (C(config.env_present) first). Evidence names keys and rule outcomes, never values.
  returned: always
  type: list
  elements: dict
  sample: [{"criterion": "config.secrets", "name": "config.secrets", "status": "fail", "blocking": true,
            "summary": "1 of 4 rules failed: AUTH_SECRET_KEY shorter than 32",
            "evidence": {"path": "/opt/cleaning/.env", "failed": ["AUTH_SECRET_KEY"],
                         "rules": [{"key": "AUTH_SECRET_KEY", "outcome": "fail", "detail": "shorter than 32"}]},
            "duration_ms": 0.4}]
status:
  description: The worst status of the blocking records.
  returned: always
  type: str
  sample: fail
counts:
  description: Records by status.
  returned: always
  type: dict
  sample: {"pass": 8, "fail": 1, "error": 0, "skipped": 0}
path:
  description: The env file audited.
  returned: always
  type: str
  sample: /opt/cleaning/.env
"""

import fnmatch
import json
import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    CRITERION_PATTERN,
    ERROR,
    FAIL,
    PASS,
    Stopwatch,
    exit_with_records,
    make_record,
)

ENV_PRESENT = "config.env_present"
CRITERIA_ORDER = ("config.prod_mode", "config.secrets", "config.basic_auth", "config.stripe", "config.email",
                  "config.storage", "config.metrics_token", "config.admin_flags")
KNOWN_ROLES = ("owner", "admin", "dispatcher", "accountant", "viewer", "worker")
MAX_BYTES = 4 * 1024 * 1024
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_EXPAND = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_TRUE = frozenset(("1", "true", "yes", "on", "y", "t"))
_FALSE = frozenset(("0", "false", "no", "off", "n", "f"))
_RULE_FIELDS = frozenset(("key", "criterion", "required", "min_length", "not_in", "prefix", "equals", "choices", "pattern",
                          "boolean", "list_no_wildcard", "when_key", "when_value", "when_default", "blocking", "description"))


class EnvFileError(Exception):
    """The env file cannot be used; the message names a line number, never its content."""


# ---------------------------------------------------------------------------------------------
# Parsing, as docker compose reads an env file
# ---------------------------------------------------------------------------------------------

def _expand(value, known):
    def repl(match):
        name = match.group("braced") or match.group("bare")
        current = known.get(name.upper())
        op = match.group("op")
        if op == ":-" and not current:
            return match.group("default") or ""
        if op == "-" and current is None:
            return match.group("default") or ""
        return current or ""
    return _EXPAND.sub(repl, value)


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "$": "\x00DOLLAR\x00"}


def parse_env(text):
    """Parse env-file text. Returns ``(values, notes)``: values keyed by upper-cased key (the last
    assignment wins), notes about lines that assign nothing. Raises EnvFileError on a line docker
    compose refuses (an unterminated quote, an invalid key)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    values, notes = {}, []
    pos, line_no, length = 0, 1, len(text)
    while pos < length:
        end = text.find("\n", pos)
        end = length if end < 0 else end
        line = text[pos:end]
        start_line = line_no
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            pos, line_no = end + 1, line_no + 1
            continue
        body = stripped
        if body.startswith("export ") or body.startswith("export\t"):
            body = body[7:].lstrip()
        if "=" not in body:
            if not _KEY.match(body):
                raise EnvFileError("line %d: not a KEY=VALUE assignment" % start_line)
            notes.append("line %d: %s has no value in the file (taken from the environment by compose)" % (start_line, body.upper()))
            pos, line_no = end + 1, line_no + 1
            continue
        key, raw = body.split("=", 1)
        key = key.strip()
        if not _KEY.match(key):
            raise EnvFileError("line %d: invalid key name" % start_line)
        raw = raw.lstrip(" \t")
        # Position of the value in the whole text (for quoted values that span lines); the first
        # "=" of the line is the assignment's, a key cannot hold one.
        value_start = pos + line.index("=") + 1
        while value_start < length and text[value_start] in " \t":
            value_start += 1
        if raw[:1] in ("'", '"'):
            quote = raw[0]
            cursor = value_start + 1
            chunks = []
            while True:
                if cursor >= length:
                    raise EnvFileError("line %d: unterminated %s quote" % (start_line, "single" if quote == "'" else "double"))
                char = text[cursor]
                if quote == '"' and char == "\\" and cursor + 1 < length:
                    nxt = text[cursor + 1]
                    chunks.append(_ESCAPES.get(nxt, "\\" + nxt))
                    cursor += 2
                    continue
                if char == quote:
                    break
                chunks.append(char)
                cursor += 1
            value = "".join(chunks)
            if quote == '"':
                value = _expand(value, values).replace("\x00DOLLAR\x00", "$")
            line_no += text.count("\n", value_start, cursor)
            rest_end = text.find("\n", cursor)
            rest_end = length if rest_end < 0 else rest_end
            rest = text[cursor + 1:rest_end].strip()
            if rest and not rest.startswith("#"):
                raise EnvFileError("line %d: unexpected characters after the closing quote" % line_no)
            values[key.upper()] = value
            pos, line_no = rest_end + 1, line_no + 1
            continue
        comment = re.search(r"\s#", raw)
        if comment:
            raw = raw[:comment.start()]
        values[key.upper()] = _expand(raw.strip(), values)
        pos, line_no = end + 1, line_no + 1
    return values, notes


def to_bool(value):
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def parse_list(value):
    """A list setting as the application reads it: a JSON array, or comma-separated."""
    text = (value or "").strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            return None
        if isinstance(parsed, list):
            return [str(item).strip() for item in parsed if str(item).strip()]
        return [str(parsed).strip()]
    return [item.strip() for item in text.split(",") if item.strip()]


# ---------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------

def default_rule_set(app_env="prod", incident_mode=False, admin_mfa_policy="required", basic_auth_roles=("admin",)):
    """The CleanWithSnapshot rules (criteria config.*), as data."""
    secret = dict(min_length=32, not_in=True)
    rules = [
        dict(key="APP_ENV", criterion="config.prod_mode", equals=app_env),
        dict(key="STRICT_CORS", criterion="config.prod_mode", boolean=True),
        dict(key="CORS_ORIGINS", criterion="config.prod_mode", list_no_wildcard=True),
        dict(key=["TRUSTED_PROXY_IPS", "TRUSTED_PROXY_CIDRS"], criterion="config.prod_mode",
             when_key="TRUST_PROXY_HEADERS", when_value=True, description="proxy trust list when TRUST_PROXY_HEADERS"),
        dict(key="AUTH_SECRET_KEY", criterion="config.secrets", **secret),
        dict(key="CLIENT_PORTAL_SECRET", criterion="config.secrets", **secret),
        dict(key="WORKER_PORTAL_SECRET", criterion="config.secrets", **secret),
        dict(key="ADMIN_PROXY_AUTH_SECRET", criterion="config.secrets", description="admin proxy-auth secret", **secret),
        dict(key="STRIPE_SECRET_KEY", criterion="config.stripe", prefix=["sk_live_", "sk_test_"], not_in=True),
        dict(key="STRIPE_WEBHOOK_SECRET", criterion="config.stripe", prefix=["whsec_"], not_in=True),
        dict(key="STRIPE_SUCCESS_URL", criterion="config.stripe", prefix=["https://"]),
        dict(key="STRIPE_CANCEL_URL", criterion="config.stripe", prefix=["https://"]),
        dict(key="EMAIL_MODE", criterion="config.email", choices=["sendgrid", "smtp", "off"]),
        dict(key="SENDGRID_API_KEY", criterion="config.email", not_in=True, when_key="EMAIL_MODE", when_value="sendgrid"),
        dict(key="SMTP_HOST", criterion="config.email", when_key="EMAIL_MODE", when_value="smtp"),
        dict(key="SMTP_PORT", criterion="config.email", pattern=r"^\d{1,5}$", when_key="EMAIL_MODE", when_value="smtp"),
        dict(key="SMTP_USERNAME", criterion="config.email", when_key="EMAIL_MODE", when_value="smtp"),
        dict(key="SMTP_PASSWORD", criterion="config.email", not_in=True, when_key="EMAIL_MODE", when_value="smtp"),
        dict(key="EMAIL_FROM", criterion="config.email", pattern=r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}",
             when_key="EMAIL_MODE", when_value=["sendgrid", "smtp"]),
        dict(key="EMAIL_FROM_NAME", criterion="config.email", blocking=False,
             when_key="EMAIL_MODE", when_value=["sendgrid", "smtp"]),
        dict(key="ORDER_STORAGE_BACKEND", criterion="config.storage",
             choices=["local", "s3", "r2", "cloudflare_r2", "cloudflare_images", "cf_images"],
             description="durable photo storage (memory is not)"),
        dict(key="ORDER_UPLOAD_ROOT", criterion="config.storage", when_key="ORDER_STORAGE_BACKEND", when_value="local"),
        dict(key="METRICS_TOKEN", criterion="config.metrics_token", min_length=16, not_in=True,
             when_key="METRICS_ENABLED", when_value=True, when_default="true"),
    ]
    for backend_keys, backends in (
            (("S3_BUCKET", "S3_ACCESS_KEY", "S3_SECRET_KEY"), ["s3"]),
            (("R2_BUCKET", "R2_ACCESS_KEY", "R2_SECRET_KEY"), ["r2", "cloudflare_r2"]),
            (("CF_IMAGES_ACCOUNT_ID", "CF_IMAGES_API_TOKEN", "CF_IMAGES_SIGNING_KEY"), ["cloudflare_images", "cf_images"])):
        for key in backend_keys:
            rule = dict(key=key, criterion="config.storage", when_key="ORDER_STORAGE_BACKEND", when_value=backends)
            if key.endswith(("SECRET_KEY", "API_TOKEN", "SIGNING_KEY")):
                rule["not_in"] = True
            rules.append(rule)
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
        if not _KEY.match(key):
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
        if not _KEY.match(rule["when_key"]):
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


_SENSITIVE = re.compile(r"(pass(word|wd)?|secret|token|key|dsn|credential|auth)", re.IGNORECASE)


def _sensitive(rule):
    return any(_SENSITIVE.search(key) for key in rule["keys"])


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
    placeholders = params["placeholders"] or []
    user_rules = []
    for index, raw in enumerate(params["rules"] or []):
        user_rules.append(normalize_rule(raw, index, placeholders))
    rules = []
    if params["default_rules"]:
        replaced = set((tuple(r["keys"]), r["criterion"]) for r in user_rules)
        defaults = default_rule_set(params["app_env"], params["incident_mode"], params["admin_mfa_policy"],
                                    params["basic_auth_roles"] or [])
        for index, raw in enumerate(defaults):
            rule = normalize_rule(raw, index, placeholders, origin="default_rules")
            if (tuple(rule["keys"]), rule["criterion"]) not in replaced:
                rules.append(rule)
    return rules + user_rules


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
        outcomes = [evaluate_rule(rule, env) for rule in mine]
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
            summary = "%d of %d rule%s failed: %s" % (len(failed), len(applied), "" if len(applied) == 1 else "s", "; ".join(
                "%s %s" % (o["key"], o["detail"]) for o in failed))
            status = FAIL
        else:
            summary = ("%d rule%s passed" % (len(applied), "" if len(applied) == 1 else "s")) if applied else "no rule applies (%s)" % "; ".join(
                sorted(set(o["detail"] for o in outcomes)))
            if warned:
                summary += "; warnings: %s" % "; ".join("%s %s" % (o["key"], o["detail"]) for o in warned)
            status = PASS
        records.append(make_record(criterion, status, summary, evidence=evidence, blocking=blocking,
                                   duration_ms=watch.elapsed_ms))
    return records, path


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path"),
            app_dir=dict(type="path", default="/opt/cleaning"),
            default_rules=dict(type="bool", default=True),
            rules=dict(type="list", elements="dict", default=[]),
            criteria=dict(type="list", elements="str", default=[]),
            blocking=dict(type="dict", default={}),
            app_env=dict(type="str", default="prod"),
            incident_mode=dict(type="bool", default=False),
            admin_mfa_policy=dict(type="str", default="required", choices=["required", "not_required", "any"]),
            basic_auth_roles=dict(type="list", elements="str", default=["admin"]),
            placeholders=dict(type="list", elements="str", default=[
                "change-me*", "changeme*", "change_me*", "replace-me*", "replaceme*", "secret", "password", "passw0rd",
                "admin", "root", "test", "todo", "tbd", "xxx*", "123456*", "qwerty*", "dev-*", "example*", "your-*",
                "your_*", "<*>", "${*}"]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    for index, criterion in enumerate(params["criteria"]):
        if not CRITERION_PATTERN.match(criterion):
            module.fail_json(msg="criteria[%d]: %s is not a criterion id (like config.secrets)" % (index, criterion[:60]))
    blocking = {}
    for criterion, value in (params["blocking"] or {}).items():
        if not CRITERION_PATTERN.match(str(criterion)):
            module.fail_json(msg="blocking: %s is not a criterion id (like config.stripe)" % str(criterion)[:60])
        try:
            blocking[str(criterion)] = _as_bool(value, "blocking.%s" % criterion)
        except RuleError as exc:
            module.fail_json(msg=str(exc))
    params["blocking"] = blocking
    for index, role in enumerate(params["basic_auth_roles"] or []):
        if not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", role):
            module.fail_json(msg="basic_auth_roles[%d]: %s is not a role name (like admin)" % (index, role[:60]))
    try:
        records, path = audit(params)
    except RuleError as exc:
        module.fail_json(msg="bad rule data: %s" % exc)
    exit_with_records(module, records, changed=False, path=path)


if __name__ == "__main__":
    main()

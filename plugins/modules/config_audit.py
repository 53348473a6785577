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
      - Apply the built-in rule set, the rules O(app_env), O(incident_mode), O(admin_mfa_policy) and O(basic_auth_roles)
        stand for (APP_ENV, the Basic Auth pairs, the admin flags), then O(base_rules). O(rules) are added to it; a rule
        of O(rules) with the same O(rules[].key) and O(rules[].criterion) as built-in rules replaces those built-in rules.
      - When false, only O(rules) apply.
    type: bool
    default: true
  base_rules:
    description:
      - The service's rules for the rest of its settings (secrets, CORS and proxy trust, Stripe, email, storage, the
        metrics token), in the format of O(rules); part of the built-in rule set when O(default_rules) is true.
      - The CleanWithSnapshot production rules are data of the C(preflight) role, C(preflight_config_default_rules) in
        its defaults, which the role passes here; called outside the role, the module applies only the rules given.
    type: list
    elements: dict
    default: []
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
- name: Audit the production env file with the rules of the preflight role's defaults
  cleanwithsnapshot.release.config_audit:
    app_dir: /opt/cleaning
    basic_auth_roles: [owner, admin, viewer]
    base_rules: "{{ preflight_config_default_rules }}"
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import exit_with_records
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.config_rules import RuleError, audit, check_options

PLACEHOLDERS = ["change-me*", "changeme*", "change_me*", "replace-me*", "replaceme*", "secret", "password", "passw0rd",
                "admin", "root", "test", "todo", "tbd", "xxx*", "123456*", "qwerty*", "dev-*", "example*", "your-*",
                "your_*", "<*>", "${*}"]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path"),
            app_dir=dict(type="path", default="/opt/cleaning"),
            default_rules=dict(type="bool", default=True),
            base_rules=dict(type="list", elements="dict", default=[]),
            rules=dict(type="list", elements="dict", default=[]),
            criteria=dict(type="list", elements="str", default=[]),
            blocking=dict(type="dict", default={}),
            app_env=dict(type="str", default="prod"),
            incident_mode=dict(type="bool", default=False),
            admin_mfa_policy=dict(type="str", default="required", choices=["required", "not_required", "any"]),
            basic_auth_roles=dict(type="list", elements="str", default=["admin"]),
            placeholders=dict(type="list", elements="str", default=PLACEHOLDERS),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        params["blocking"] = check_options(params)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    try:
        records, path = audit(params)
    except RuleError as exc:
        module.fail_json(msg="bad rule data: %s" % exc)
    exit_with_records(module, records, changed=False, path=path)


if __name__ == "__main__":
    main()

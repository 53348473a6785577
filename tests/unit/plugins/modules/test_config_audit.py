"""config_audit run as Ansible runs it on a node (module_runner), on real env files in tmp_path, with the
production rules of the preflight role's defaults as the role passes them."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from modrun import run_module

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import env_file

ROLE_DEFAULTS = Path(__file__).resolve().parents[4] / "roles" / "preflight" / "defaults" / "main.yml"
BASE_RULES = yaml.safe_load(ROLE_DEFAULTS.read_text())["preflight_config_default_rules"]

# Every secret value carries the marker; no output may contain it, not even a piece of a value.
MARK = "QX7CANARY"
GOOD = {
    "APP_ENV": "prod",
    "STRICT_CORS": "true",
    "CORS_ORIGINS": "https://panidobro.com,https://api.panidobro.com",
    "TRUST_PROXY_HEADERS": "true",
    "TRUSTED_PROXY_CIDRS": "10.0.0.0/8",
    "AUTH_SECRET_KEY": MARK + "auth0123456789abcdefghijklmnopq",
    "CLIENT_PORTAL_SECRET": MARK + "client0123456789abcdefghijklmno",
    "WORKER_PORTAL_SECRET": MARK + "worker0123456789abcdefghijklmno",
    "ADMIN_PROXY_AUTH_SECRET": MARK + "proxy0123456789abcdefghijklmnop",
    "ADMIN_BASIC_USERNAME": "ops-admin",
    "ADMIN_BASIC_PASSWORD": MARK + "adminpw99",
    "STRIPE_SECRET_KEY": "sk_live_" + MARK + "stripe",
    "STRIPE_WEBHOOK_SECRET": "whsec_" + MARK + "hook",
    "STRIPE_SUCCESS_URL": "https://panidobro.com/deposit-success?session_id={CHECKOUT_SESSION_ID}",
    "STRIPE_CANCEL_URL": "https://panidobro.com/deposit-cancelled",
    "EMAIL_MODE": "sendgrid",
    "SENDGRID_API_KEY": "SG." + MARK + "sendgrid",
    "EMAIL_FROM": "noreply@panidobro.com",
    "EMAIL_FROM_NAME": "Pani Dobro",
    "ORDER_STORAGE_BACKEND": "r2",
    "R2_BUCKET": "photos",
    "R2_ACCESS_KEY": MARK + "r2access",
    "R2_SECRET_KEY": MARK + "r2secret",
    "METRICS_TOKEN": MARK + "metrics01",
    "ADMIN_READ_ONLY": "false",
    "ADMIN_MFA_REQUIRED": "true",
}
ALL_CRITERIA = ["config.env_present", "config.prod_mode", "config.secrets", "config.basic_auth", "config.stripe",
                "config.email", "config.storage", "config.metrics_token", "config.admin_flags"]
REMOVE = object()


@pytest.fixture()
def module_runner(module_runner):
    """config_audit as the preflight role calls it: the role's rule data as base_rules."""
    def run(name, args, *more, **options):
        return module_runner(name, dict({"base_rules": BASE_RULES}, **args), *more, **options)
    return run


def write_env(tmp_path, changes=None, extra_text=""):
    env = dict(GOOD)
    for key, value in (changes or {}).items():
        if value is REMOVE:
            env.pop(key, None)
        else:
            env[key] = value
    lines = ["# CleanWithSnapshot production settings", ""]
    for key, value in env.items():
        lines.append("%s=%s" % (key, value))
    path = tmp_path / ".env"
    path.write_text("\n".join(lines) + "\n" + extra_text, encoding="utf-8")
    return path


def records(result):
    return {r["criterion"]: r for r in result["records"]}


def assert_no_leak(result):
    assert MARK not in result.raw
    assert MARK.lower() not in result.raw.lower()


def test_good_production_env_passes(tmp_path, module_runner):
    path = write_env(tmp_path)
    result = module_runner("config_audit", {"path": str(path)})
    assert not result.get("failed") and result["changed"] is False
    assert [r["criterion"] for r in result["records"]] == ALL_CRITERIA
    assert {r["criterion"]: r["status"] for r in result["records"]} == dict.fromkeys(ALL_CRITERIA, "pass")
    assert result["status"] == "pass" and result["path"] == str(path)
    assert all(r["blocking"] for r in result["records"])
    assert_no_leak(result)


def test_app_dir_default_path_and_check_mode(tmp_path, module_runner):
    write_env(tmp_path)
    result = module_runner("config_audit", {"app_dir": str(tmp_path)}, check_mode=True)
    assert result["path"] == str(tmp_path / ".env")
    assert result["status"] == "pass"


BREAKS = [
    ({"APP_ENV": "dev"}, "config.prod_mode", "APP_ENV is not the expected value 'prod'"),
    ({"STRICT_CORS": "false"}, "config.prod_mode", "STRICT_CORS is not true"),
    ({"STRICT_CORS": "maybe"}, "config.prod_mode", "STRICT_CORS is not a boolean"),
    ({"CORS_ORIGINS": "*"}, "config.prod_mode", "CORS_ORIGINS contains a wildcard entry"),
    ({"CORS_ORIGINS": '["https://panidobro.com", "*"]'}, "config.prod_mode", "CORS_ORIGINS contains a wildcard entry"),
    ({"CORS_ORIGINS": ""}, "config.prod_mode", "CORS_ORIGINS not set"),
    ({"TRUSTED_PROXY_CIDRS": REMOVE}, "config.prod_mode", "TRUSTED_PROXY_IPS or TRUSTED_PROXY_CIDRS none of them is set"),
    ({"AUTH_SECRET_KEY": MARK + "short"}, "config.secrets", "AUTH_SECRET_KEY shorter than 32"),
    ({"CLIENT_PORTAL_SECRET": "dev-client-portal-secret-" + MARK}, "config.secrets",
     "CLIENT_PORTAL_SECRET is a default or placeholder value"),
    ({"WORKER_PORTAL_SECRET": REMOVE}, "config.secrets", "WORKER_PORTAL_SECRET not set"),
    ({"ADMIN_PROXY_AUTH_SECRET": "change-me-" + MARK + "-0123456789abc"}, "config.secrets",
     "ADMIN_PROXY_AUTH_SECRET is a default or placeholder value"),
    ({"ADMIN_BASIC_PASSWORD": MARK}, "config.basic_auth", "ADMIN_BASIC_PASSWORD shorter than 12"),
    ({"ADMIN_BASIC_PASSWORD": "ChangeMe-" + MARK}, "config.basic_auth", "ADMIN_BASIC_PASSWORD is a default or placeholder value"),
    ({"ADMIN_BASIC_USERNAME": REMOVE}, "config.basic_auth", "ADMIN_BASIC_USERNAME not set"),
    ({"VIEWER_BASIC_USERNAME": "viewer"}, "config.basic_auth", "VIEWER_BASIC_PASSWORD not set"),
    ({"VIEWER_BASIC_USERNAME": "viewer", "VIEWER_BASIC_PASSWORD": MARK[:5]}, "config.basic_auth",
     "VIEWER_BASIC_PASSWORD shorter than 12"),
    ({"OWNER_BASIC_PASSWORD": MARK + "owner-pass"}, "config.basic_auth", "OWNER_BASIC_USERNAME not set"),
    ({"STRIPE_SECRET_KEY": "pk_live_" + MARK}, "config.stripe",
     "STRIPE_SECRET_KEY does not start with an allowed prefix (sk_live_, sk_test_)"),
    ({"STRIPE_WEBHOOK_SECRET": MARK}, "config.stripe", "STRIPE_WEBHOOK_SECRET does not start with an allowed prefix (whsec_)"),
    ({"STRIPE_SUCCESS_URL": "http://localhost:3000/deposit-success"}, "config.stripe",
     "STRIPE_SUCCESS_URL does not start with an allowed prefix (https://)"),
    ({"STRIPE_CANCEL_URL": REMOVE}, "config.stripe", "STRIPE_CANCEL_URL not set"),
    ({"EMAIL_MODE": "mailgun"}, "config.email", "EMAIL_MODE is not one of sendgrid, smtp, off"),
    ({"EMAIL_MODE": REMOVE}, "config.email", "EMAIL_MODE not set"),
    ({"SENDGRID_API_KEY": REMOVE}, "config.email", "SENDGRID_API_KEY not set"),
    ({"EMAIL_MODE": "smtp", "SMTP_HOST": "smtp.example.net", "SMTP_PORT": "587", "SMTP_USERNAME": "mailer"},
     "config.email", "SMTP_PASSWORD not set"),
    ({"EMAIL_MODE": "smtp", "SMTP_HOST": "smtp.example.net", "SMTP_PORT": "five", "SMTP_USERNAME": "mailer",
      "SMTP_PASSWORD": MARK + "smtp"}, "config.email", "SMTP_PORT does not match the expected pattern"),
    ({"EMAIL_FROM": "noreply"}, "config.email", "EMAIL_FROM does not match the expected pattern"),
    ({"ORDER_STORAGE_BACKEND": "memory"}, "config.storage",
     "ORDER_STORAGE_BACKEND is not one of local, s3, r2, cloudflare_r2, cloudflare_images, cf_images"),
    ({"ORDER_STORAGE_BACKEND": "local"}, "config.storage", "ORDER_UPLOAD_ROOT not set"),
    ({"R2_SECRET_KEY": REMOVE}, "config.storage", "R2_SECRET_KEY not set"),
    ({"ORDER_STORAGE_BACKEND": "cloudflare_images", "CF_IMAGES_ACCOUNT_ID": "acc", "CF_IMAGES_API_TOKEN": MARK + "cf"},
     "config.storage", "CF_IMAGES_SIGNING_KEY not set"),
    ({"METRICS_TOKEN": MARK[:8]}, "config.metrics_token", "METRICS_TOKEN shorter than 16"),
    ({"METRICS_TOKEN": REMOVE}, "config.metrics_token", "METRICS_TOKEN not set"),
    ({"METRICS_ENABLED": "true", "METRICS_TOKEN": "your-metrics-token-" + MARK}, "config.metrics_token",
     "METRICS_TOKEN is a default or placeholder value"),
    ({"ADMIN_READ_ONLY": "true"}, "config.admin_flags", "ADMIN_READ_ONLY is not false"),
    ({"ADMIN_MFA_REQUIRED": "false"}, "config.admin_flags", "ADMIN_MFA_REQUIRED is not true"),
    ({"ADMIN_MFA_REQUIRED": REMOVE}, "config.admin_flags", "ADMIN_MFA_REQUIRED not set"),
]


@pytest.mark.parametrize("changes, criterion, detail", BREAKS, ids=[b[2] for b in BREAKS])
def test_each_rule_breaks_its_criterion_only(tmp_path, module_runner, changes, criterion, detail):
    path = write_env(tmp_path, changes)
    result = module_runner("config_audit", {"path": str(path)})
    assert not result.get("failed"), result.get("msg")
    recs = records(result)
    assert recs[criterion]["status"] == "fail"
    assert detail in recs[criterion]["summary"], recs[criterion]["summary"]
    others = {c: r["status"] for c, r in recs.items() if c != criterion}
    assert set(others.values()) == {"pass"}, others
    assert result["status"] == "fail"
    assert_no_leak(result)


@pytest.mark.parametrize("changes, options, criterion", [
    ({"TRUST_PROXY_HEADERS": "false", "TRUSTED_PROXY_CIDRS": REMOVE}, {}, "config.prod_mode"),
    ({"TRUST_PROXY_HEADERS": REMOVE, "TRUSTED_PROXY_CIDRS": REMOVE}, {}, "config.prod_mode"),
    ({"METRICS_ENABLED": "false", "METRICS_TOKEN": REMOVE}, {}, "config.metrics_token"),
    ({"EMAIL_MODE": "off", "SENDGRID_API_KEY": REMOVE, "EMAIL_FROM": REMOVE, "EMAIL_FROM_NAME": REMOVE}, {}, "config.email"),
    ({"ADMIN_READ_ONLY": "true"}, {"incident_mode": True}, "config.admin_flags"),
    ({"ADMIN_READ_ONLY": REMOVE}, {}, "config.admin_flags"),
    ({"ADMIN_MFA_REQUIRED": "false"}, {"admin_mfa_policy": "any"}, "config.admin_flags"),
    ({"ADMIN_MFA_REQUIRED": "false"}, {"admin_mfa_policy": "not_required"}, "config.admin_flags"),
    ({"ADMIN_BASIC_USERNAME": REMOVE, "ADMIN_BASIC_PASSWORD": REMOVE, "OWNER_BASIC_USERNAME": "owner",
      "OWNER_BASIC_PASSWORD": MARK + "owner-pw"}, {"basic_auth_roles": ["owner"]}, "config.basic_auth"),
    ({"ORDER_STORAGE_BACKEND": "local", "ORDER_UPLOAD_ROOT": "/srv/uploads"}, {}, "config.storage"),
])
def test_conditions_and_policies_that_pass(tmp_path, module_runner, changes, options, criterion):
    path = write_env(tmp_path, changes)
    result = module_runner("config_audit", dict(options, path=str(path)))
    recs = records(result)
    assert recs[criterion]["status"] == "pass", recs[criterion]["summary"]
    assert result["status"] == "pass"


def test_optional_key_absent_passes_but_a_blocking_false_rule_warns(tmp_path, module_runner):
    path = write_env(tmp_path, {"EMAIL_FROM_NAME": REMOVE})
    result = module_runner("config_audit", {"path": str(path)})
    email = records(result)["config.email"]
    assert email["status"] == "pass"
    assert email["evidence"]["warnings"] == ["EMAIL_FROM_NAME"]
    assert "warnings: EMAIL_FROM_NAME not set" in email["summary"]


def test_evidence_holds_key_names_and_outcomes_only(tmp_path, module_runner):
    path = write_env(tmp_path, {"AUTH_SECRET_KEY": MARK + "x" * 10})
    result = module_runner("config_audit", {"path": str(path)})
    secrets = records(result)["config.secrets"]
    entry = [r for r in secrets["evidence"]["rules"] if r["key"] == "AUTH_SECRET_KEY"][0]
    assert entry == {"key": "AUTH_SECRET_KEY", "outcome": "fail", "detail": "shorter than 32"}
    assert secrets["evidence"]["failed"] == ["AUTH_SECRET_KEY"]
    assert str(len(MARK) + 10) not in secrets["summary"]
    allowed = {"key", "outcome", "detail", "rule"}
    for record in result["records"][1:]:
        for item in record["evidence"]["rules"]:
            assert set(item) <= allowed
    assert_no_leak(result)


def test_missing_env_file_fails_env_present_and_errors_the_rest(tmp_path, module_runner):
    result = module_runner("config_audit", {"path": str(tmp_path / "nope.env")})
    recs = records(result)
    assert recs["config.env_present"]["status"] == "fail"
    assert "does not exist" in recs["config.env_present"]["summary"]
    assert {c: r["status"] for c, r in recs.items() if c != "config.env_present"} == dict.fromkeys(ALL_CRITERIA[1:], "error")
    assert "not evaluated" in recs["config.secrets"]["summary"]
    assert result["status"] == "error"


@pytest.mark.parametrize("content", ["", "\n\n", "# only comments\n# APP_ENV=prod\n", "EMPTY=\nALSO_EMPTY=''\n"])
def test_empty_env_file_fails_env_present(tmp_path, module_runner, content):
    path = tmp_path / ".env"
    path.write_text(content)
    recs = records(module_runner("config_audit", {"path": str(path)}))
    assert recs["config.env_present"]["status"] == "fail"
    assert "empty" in recs["config.env_present"]["summary"]
    assert recs["config.prod_mode"]["status"] == "error"


def test_a_directory_is_not_an_env_file(tmp_path, module_runner):
    recs = records(module_runner("config_audit", {"path": str(tmp_path)}))
    assert recs["config.env_present"]["status"] == "fail"
    assert "not a regular file" in recs["config.env_present"]["summary"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_env_file_is_an_error(tmp_path, module_runner):
    path = write_env(tmp_path)
    path.chmod(0)
    recs = records(module_runner("config_audit", {"path": str(path)}))
    assert recs["config.env_present"]["status"] == "error"


def test_a_file_that_fails_to_read_is_an_error_not_a_failure(module_runner):
    # /proc/self/mem is a regular file whose read() fails with EIO, whoever runs the test.
    recs = records(module_runner("config_audit", {"path": "/proc/self/mem"}))
    assert recs["config.env_present"]["status"] == "error"
    assert "cannot be read: Input/output error" in recs["config.env_present"]["summary"]
    assert recs["config.secrets"]["status"] == "error"


def test_unparseable_env_file_names_the_line_not_its_content(tmp_path, module_runner):
    path = write_env(tmp_path, extra_text='BROKEN="%s never closed\n' % MARK)
    result = module_runner("config_audit", {"path": str(path)})
    present = records(result)["config.env_present"]
    assert present["status"] == "fail"
    assert "line %d: unterminated double quote" % (len(GOOD) + 3) in present["summary"]
    assert_no_leak(result)


def test_compose_syntax_is_understood(tmp_path, module_runner):
    text = "\n".join([
        "\ufeff# comment line",
        "export APP_ENV=prod",
        "  STRICT_CORS = true   # inline comment",
        "CORS_ORIGINS='https://a.example,https://b.example'",
        'AUTH_SECRET_KEY="%s-with=equals=inside-and-more-chars"' % MARK,
        "BASE=%sbase-secret-value-long-enough" % MARK,
        "CLIENT_PORTAL_SECRET=${BASE}-client",
        "WORKER_PORTAL_SECRET=${UNDEFINED:-%s-default-worker-portal-secret}" % MARK,
        "ADMIN_PROXY_AUTH_SECRET=\"first line %s\nsecond line of a long proxy secret\"" % MARK,
        "admin_basic_username=lowercase-key",
        "ADMIN_BASIC_PASSWORD='%s$NOT_EXPANDED'" % MARK,
        "METRICS_TOKEN=short",
        "METRICS_TOKEN=%s-the-last-one-wins" % MARK,
        "ADMIN_MFA_REQUIRED=yes",
        "SHELL_VALUE",
        "",
    ])
    path = tmp_path / ".env"
    path.write_text(text, encoding="utf-8")
    criteria = ["config.prod_mode", "config.secrets", "config.basic_auth", "config.metrics_token", "config.admin_flags"]
    result = module_runner("config_audit", {"path": str(path), "criteria": criteria})
    recs = records(result)
    assert list(recs) == ["config.env_present", "config.prod_mode", "config.secrets", "config.basic_auth",
                          "config.metrics_token", "config.admin_flags"]
    for criterion, record in recs.items():
        assert record["status"] == "pass", (criterion, record["summary"])
    assert any("SHELL_VALUE has no value in the file" in n for n in recs["config.env_present"]["evidence"]["notes"])
    assert_no_leak(result)


def test_parser_details():
    values, notes = env_file.parse_env(
        'A=1\nB="x\\ny \\"q\\" \\$A"\nC=\'$A\'\nD=$A-${A}-${MISSING-dflt}-${EMPTY:-e}\nEMPTY=\nE=${EMPTY-keep}\r\n'
        'F=a#b # c\nexport G = "v" # comment\n')
    assert values["A"] == "1"
    assert values["B"] == 'x\ny "q" $A'
    assert values["C"] == "$A"
    assert values["D"] == "1-1-dflt-e"
    assert values["E"] == ""
    assert values["F"] == "a#b"
    assert values["G"] == "v"
    assert notes == []
    for bad, line in (("A=1\nB='open\n", 2), ('A="x" trailing\n', 1), ("1BAD=x\n", 1), ("no good line here\n", 1)):
        with pytest.raises(env_file.EnvFileError) as info:
            env_file.parse_env(bad)
        assert str(info.value).startswith("line %d:" % line)


def test_custom_rules_conditional_and_replacing_a_default(tmp_path, module_runner):
    path = write_env(tmp_path, {"CAPTCHA_MODE": "turnstile", "APP_ENV": "staging"})
    rules = [
        {"key": "TURNSTILE_SECRET_KEY", "criterion": "config.secrets", "when_key": "CAPTCHA_MODE",
         "when_value": "turnstile", "min_length": 20, "not_in": True},
        {"key": "APP_ENV", "criterion": "config.prod_mode", "choices": ["prod", "staging"]},
        {"key": "REDIS_URL", "criterion": "config.ratelimit", "pattern": "^rediss?://", "blocking": False},
    ]
    result = module_runner("config_audit", {"path": str(path), "rules": rules})
    recs = records(result)
    assert recs["config.secrets"]["status"] == "fail"
    assert "TURNSTILE_SECRET_KEY not set" in recs["config.secrets"]["summary"]
    assert recs["config.prod_mode"]["status"] == "pass"  # the replaced APP_ENV rule accepts staging
    assert recs["config.ratelimit"]["status"] == "pass"  # a non-blocking rule only warns
    assert recs["config.ratelimit"]["evidence"]["warnings"] == ["REDIS_URL"]
    assert list(recs)[-1] == "config.ratelimit"


def test_only_custom_rules_and_per_environment_blocking(tmp_path, module_runner):
    path = write_env(tmp_path, {"STRIPE_SECRET_KEY": REMOVE})
    result = module_runner("config_audit", {"path": str(path), "blocking": {"config.stripe": False}})
    stripe = records(result)["config.stripe"]
    assert stripe["status"] == "fail" and stripe["blocking"] is False
    assert result["status"] == "pass"  # the worst status of the blocking records

    result = module_runner("config_audit", {"path": str(path), "default_rules": False,
                                            "rules": [{"key": "APP_ENV", "criterion": "config.prod_mode", "equals": "prod"}]})
    assert [r["criterion"] for r in result["records"]] == ["config.env_present", "config.prod_mode"]


@pytest.mark.parametrize("key", ["R2_ACCESS_KEY", "ADMIN_PROXY_AUTH_SECRET", "METRICS_TOKEN"])
def test_an_equals_rule_on_a_secret_setting_never_shows_its_expected_value(tmp_path, module_runner, key):
    """Names with "key" or "auth" in them are secrets too (redaction.SENSITIVE_SETTING)."""
    path = write_env(tmp_path)
    expected = MARK + "expected-value"
    result = module_runner("config_audit", {"path": str(path), "default_rules": False,
                                            "rules": [{"key": key, "criterion": "config.storage", "equals": expected}]})
    record = records(result)["config.storage"]
    assert record["status"] == "fail"
    assert "%s is not the expected value" % key in record["summary"]
    assert expected not in repr(result["records"]) and expected not in result.get("msg", "")


def test_without_base_rules_only_the_policy_rules_apply(tmp_path):
    """Called outside the role with no rule data: APP_ENV, the Basic Auth pairs and the admin flags."""
    path = write_env(tmp_path, {"AUTH_SECRET_KEY": "short", "APP_ENV": "dev"})
    result = run_module("config_audit", {"path": str(path)})
    recs = records(result)
    assert list(recs) == ["config.env_present", "config.prod_mode", "config.basic_auth", "config.admin_flags"]
    assert [r["key"] for r in recs["config.prod_mode"]["evidence"]["rules"]] == ["APP_ENV"]
    assert recs["config.prod_mode"]["status"] == "fail"
    assert_no_leak(result)


@pytest.mark.parametrize("rules, fragment", [
    ([{"criterion": "config.secrets"}], "rules[0].key: missing"),
    ([{"key": "A"}], "rules[0].criterion: missing"),
    ([{"key": "A", "criterion": "Secrets"}], "rules[0].criterion: not a criterion id"),
    ([{"key": "A", "criterion": "config.env_present"}], "rules[0].criterion: config.env_present is reported by the module"),
    ([{"key": "A", "criterion": "config.x"}, {"key": "B", "criterion": "config.x", "min_len": 3}],
     "rules[1]: unknown field(s) min_len"),
    ([{"key": "A", "criterion": "config.x", "min_length": -1}], "rules[0].min_length: must be a whole number >= 0"),
    ([{"key": "A", "criterion": "config.x", "pattern": "("}], "rules[0].pattern: not a valid regular expression"),
    ([{"key": "A", "criterion": "config.x", "when_value": "on"}], "rules[0].when_value: needs when_key"),
    ([{"key": "A", "criterion": "config.x", "not_in": {"a": 1}}], "rules[0].not_in: must be a non-empty list of text"),
    ([{"key": "A", "criterion": "config.x", "boolean": "sometimes"}], "rules[0].boolean: must be true or false"),
    ([{"key": ["A", "bad key"], "criterion": "config.x"}], "rules[0].key: bad key is not an env key name"),
])
def test_bad_rule_data_fails_naming_the_rule_and_field(tmp_path, module_runner, rules, fragment):
    path = write_env(tmp_path)
    result = module_runner("config_audit", {"path": str(path), "rules": rules})
    assert result.get("failed") is True
    assert fragment in result["msg"], result["msg"]
    assert "Traceback" not in result.raw


@pytest.mark.parametrize("args, fragment", [
    ({"criteria": ["Config Secrets"]}, "criteria[0]: Config Secrets is not a criterion id"),
    ({"blocking": {"config.stripe": "sometimes"}}, "blocking.config.stripe: must be true or false"),
    ({"basic_auth_roles": ["admin", "bad role"]}, "basic_auth_roles[1]: bad role is not a role name"),
    ({"admin_mfa_policy": "maybe"}, "admin_mfa_policy"),
])
def test_bad_options_fail(tmp_path, module_runner, args, fragment):
    result = module_runner("config_audit", dict(args, path=str(write_env(tmp_path))))
    assert result.get("failed") is True and fragment in result["msg"]

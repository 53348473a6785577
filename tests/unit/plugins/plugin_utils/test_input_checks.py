"""Inputs checked in the user's words before any check runs (plugin_utils/input_checks.py, criteria_catalog.py) and
the gate's refusal of a waiver or an advisory entry naming an unknown criterion (decision.py)."""
from __future__ import annotations

import datetime

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils import criteria_catalog as catalog
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils import decision, reports
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils import input_checks as ic
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import make_record

TODAY = datetime.date(2026, 6, 15)
NOW = datetime.datetime(2026, 6, 15, 12, 0, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def known():
    return set(catalog.known_criteria())


# ------------------------------------------------------------------------------------------- the catalog

def test_the_catalog_is_docs_criteria_md_and_holds_every_criterion_the_roles_require(known):
    assert {"backup.freshness", "health.liveness", "rls.isolation", "canary.promoted", "canary.rolled_back",
            "deploy.lock", "slo.vs_stable"} <= known
    # Criteria named in the prose or in the canary's measurement table are not catalog rows.
    assert "canary.step.25" not in known and "slo.error_rate" in known


def test_the_catalog_parser_reads_only_id_tables():
    text = "\n".join([
        "| Criterion | Metric |", "|---|---|", "| `slo.not_an_id_table` | - |", "",
        "| id | GO means |", "|---|---|", "| `a.one` | x |", "| `b.two` / `b.three` | y |", "",
        "text with `c.four`",
    ])
    assert catalog.parse(text) == ["a.one", "b.two", "b.three"]


def test_a_missing_catalog_is_an_error_not_an_empty_list(tmp_path):
    with pytest.raises(catalog.CatalogError, match="cannot read the criteria catalog"):
        catalog.known_criteria(str(tmp_path / "criteria.md"))
    empty = tmp_path / "empty.md"
    empty.write_text("# nothing\n")
    with pytest.raises(catalog.CatalogError, match="lists no criterion"):
        catalog.known_criteria(str(empty))


def test_an_unknown_criterion_names_the_close_ones(known):
    assert catalog.unknown_criterion("backup.freshness", known) is None
    assert catalog.unknown_criterion("backup.freshnes", known).startswith(
        "backup.freshnes is not a known criterion (did you mean backup.freshness")
    far = catalog.unknown_criterion("payments.refunds", known)
    assert "did you mean" not in far and "docs/criteria.md" in far


# ------------------------------------------------------------------------------------------- the user's variable

ROLE_DEFAULTS = {
    "gate_waivers": "{{ release_waivers | default([]) }}",
    "verify_api_base_url": "{{ release_api_base_url }}",
    "verify_db_app_role": "{{ release_db_app_role | default('') }}",
    "verify_admin_deadline": "{{ verify_http_deadline }}",
    "verify_http_deadline": 90,
    "verify_rls_tables": ["bookings"],
}


@pytest.mark.parametrize("variable, inventory, named", [
    ("gate_waivers", {"release_waivers": []}, "release_waivers"),
    # Nothing set: the inventory's name is the one to set.
    ("gate_waivers", {}, "release_waivers"),
    ("verify_db_app_role", {}, "release_db_app_role"),
    # Set as the role variable itself: that is its name.
    ("gate_waivers", {"gate_waivers": [{"criterion": "x.y"}]}, "gate_waivers"),
    ("verify_admin_deadline", {}, "verify_http_deadline"),
    ("verify_rls_tables", {}, "verify_rls_tables"),
    # An inventory value that reads something else (a lookup, an attribute) is where the user set it.
    ("verify_api_base_url", {"release_api_base_url": "{{ release_local.api_base_url }}"}, "release_api_base_url"),
    ("verify_api_base_url", {"release_api_base_url": "{{ release_other_url }}"}, "release_other_url"),
    ("verify_api_base_url", {"release_api_base_url": "{{ lookup('env', 'URL') }}"}, "release_api_base_url"),
])
def test_the_variable_named_is_the_one_the_user_sets(variable, inventory, named):
    raw = dict(ROLE_DEFAULTS, **inventory)
    assert ic.user_variable(variable, raw) == named


def test_a_loop_of_hand_overs_ends():
    assert ic.user_variable("verify_a", {"verify_a": "{{ verify_b }}", "verify_b": "{{ verify_a }}"}) == "verify_b"


# ------------------------------------------------------------------------------------------- the checks

def test_waivers_are_checked_as_the_gate_reads_them_under_the_users_name(known):
    waivers = [
        {"criterion": "backup.freshnes", "reason": "backup host moves", "expires": "2026-07-01"},
        {"criterion": "smoke.docs", "reason": "docs off", "expires": "2026-06-01"},
        {"criterion": "backup.drill", "expires": "2026-07-01"},
        {"criterion": "health.liveness", "reason": "r", "expires": "soon"},
    ]
    errors, expired = ic.check_waivers(waivers, "release_waivers", known, TODAY)
    assert errors == [
        "release_waivers[2].reason: missing (a waiver must say why)",
        "release_waivers[3].expires: soon is not a valid date (expected a date YYYY-MM-DD)",
        "release_waivers[0].criterion: backup.freshnes is not a known criterion (did you mean backup.freshness?)",
    ]
    assert expired == ["release_waivers[1] (smoke.docs) expired on 2026-06-01: it waives nothing"]


@pytest.mark.parametrize("value, fragment", [
    ({"criterion": "backup.drill"}, "release_waivers: must be a list of waivers ({criterion, reason, expires}), got dict"),
    (["backup.drill"], "release_waivers[0]: a waiver must be a mapping, got str"),
])
def test_a_waiver_list_of_the_wrong_shape_is_named(known, value, fragment):
    errors, dummy = ic.check_waivers(value, "release_waivers", known, TODAY)
    assert errors == [fragment]


def test_criterion_lists_refuse_unknown_ids_and_accept_the_runs_own(known):
    errors = ic.check_criteria(["config.strip", "smoke.docs", 3], "release_advisory_criteria", known)
    assert errors[0].startswith("release_advisory_criteria[0]: config.strip is not a known criterion (did you mean "
                                "config.stripe")
    assert errors[1] == "release_advisory_criteria[2]: must be a criterion id, got int"
    assert ic.check_criteria(["custom.checkout"], "verify_required_criteria", known | {"custom.checkout"}) == []
    assert ic.check_criteria("config.stripe", "gate_advisory", known) == [
        "gate_advisory: must be a list of criterion ids, got str"]
    assert ic.check_criteria(None, "release_advisory_criteria", known) == []


@pytest.mark.parametrize("value, error", [
    ("https://api.example.com", None),
    ("http://127.0.0.1:8000/base", None),
    ("http://ops:s3cret@127.0.0.1:8000", None),
    ("http://[::1]:8000/", None),
    ("http://127.0.0.1:port/", "release_api_base_url: 'http://127.0.0.1:port/' is not an http:// or https:// URL with a host"),
    ("https://", "release_api_base_url: 'https://' is not an http:// or https:// URL with a host"),
    ("", "release_api_base_url: not set (an http:// or https:// URL, like https://api.example.com)"),
    (None, "release_api_base_url: not set (an http:// or https:// URL, like https://api.example.com)"),
    ("api.example.com", "release_api_base_url: 'api.example.com' is not an http:// or https:// URL with a host"),
    (["https://a"], "release_api_base_url: ['https://a'] is not an http:// or https:// URL with a host"),
])
def test_the_api_url_must_be_http_or_https(value, error):
    assert ic.check_url(value, "release_api_base_url") == ([error] if error else [])


def test_a_url_with_a_password_is_never_shown_with_it():
    (error,) = ic.check_url("ftp://deploy:hunter2-secret@api.example.com", "release_api_base_url")
    assert "hunter2-secret" not in error and "release_api_base_url" in error


def test_one_of_names_every_variable():
    assert ic.check_one_of([[], ""], ["verify_rls_tables", "verify_rls_table_pattern"]) == [
        "verify_rls_tables or verify_rls_table_pattern: none is set; one of them must be"]
    assert ic.check_one_of([[], "^tenant_"], ["verify_rls_tables", "verify_rls_table_pattern"]) == []


# ------------------------------------------------------------------------------------------- the gate

def passing():
    return [make_record("health.liveness", "pass", "ok"), make_record("backup.freshness", "fail", "marker 3 days old")]


def test_the_gate_refuses_a_waiver_for_an_unknown_criterion_instead_of_waiving_nothing():
    report = decision.evaluate(records=passing(), now=NOW, waivers=[
        {"criterion": "backup.freshnes", "reason": "backup host moves", "expires": "2026-07-01"}])
    assert report["verdict"] == decision.NO_GO
    assert report["input_errors"] == [
        "waivers[0].criterion: backup.freshnes is not a known criterion (did you mean backup.freshness?)"]
    assert report["waivers"]["unused"] == []
    assert "did you mean backup.freshness?" in reports.message(report)


def test_the_gate_refuses_an_unknown_advisory_criterion():
    report = decision.evaluate(records=passing(), now=NOW, advisory=["backup.freshnes"])
    assert report["verdict"] == decision.NO_GO
    assert report["input_errors"][0].startswith("advisory: backup.freshnes is not a known criterion (did you mean "
                                                "backup.freshness")


def test_the_gate_knows_the_criteria_of_this_runs_records_and_required_list():
    records = passing() + [make_record("custom.checkout", "fail", "checkout 500")]
    report = decision.evaluate(records=records, now=NOW, advisory=["custom.checkout"], required_criteria=["custom.audit"],
                               waivers=[{"criterion": "backup.freshness", "reason": "r", "expires": "2026-07-01"},
                                        {"criterion": "custom.audit", "reason": "r", "expires": "2026-07-01"}])
    assert report["input_errors"] == []
    assert report["verdict"] == decision.GO


def test_an_expired_waiver_is_in_the_failure_message():
    report = decision.evaluate(records=passing(), now=NOW, waivers=[
        {"criterion": "backup.freshness", "reason": "backup host moves", "expires": "2026-06-14"}])
    assert report["verdict"] == decision.NO_GO
    assert "waivers[0] for backup.freshness expired on 2026-06-14 and was ignored" in report["reasons"]
    assert "waivers[0] for backup.freshness expired on 2026-06-14 and was ignored" in reports.message(report)


def test_the_gate_names_the_inputs_as_the_caller_knows_them():
    names = {"waivers": "release_waivers", "advisory": "release_advisory_criteria"}
    report = decision.evaluate(records=passing(), now=NOW, names=names, advisory=["backup.freshnes"], waivers=[
        {"criterion": "backup.freshnes", "reason": "r", "expires": "2026-07-01"},
        {"criterion": "backup.freshness", "expires": "2026-07-01"},
        {"criterion": "backup.freshness", "reason": "r", "expires": "2026-06-01"}])
    assert report["input_errors"] == [
        "release_waivers[1].reason: missing (a waiver must say why)",
        "release_waivers[0].criterion: backup.freshnes is not a known criterion (did you mean backup.freshness?)",
        "release_advisory_criteria: backup.freshnes is not a known criterion (did you mean backup.freshness?)",
    ]
    assert "release_waivers[2] for backup.freshness expired on 2026-06-01 and was ignored" in report["reasons"]


def test_every_criterion_the_collection_emits_is_in_the_catalog(known):
    """A waiver for a criterion the checks really report must never be refused as unknown."""
    import re
    from pathlib import Path

    root = Path(catalog.CATALOG_PATH).resolve().parents[1]
    ident = r"([a-z][a-z0-9_]*\.[a-z0-9_.]+)"
    constants = r"(?:[A-Z_]*CRITERION|AT_HEAD|SINGLE_HEAD|READYZ|COVERAGE|ENABLED_FORCED|ISOLATION|POLICIES|ENV_PRESENT)"
    in_python = re.compile(r"(?:make_record\(\s*|criterion=|criterion\": |" + constants + r" = )[\"']" + ident + r"[\"']")
    in_yaml = re.compile(r"criterion: *[\"']?" + ident + r"[\"']?\s*[,}\n]")
    emitted = set()
    for path in (root / "plugins").rglob("*.py"):
        emitted.update(in_python.findall(path.read_text(encoding="utf-8")))
    for path in (root / "roles").rglob("*.yml"):
        emitted.update(in_yaml.findall(path.read_text(encoding="utf-8")))
    assert len(emitted) >= 30
    assert emitted - known == set()

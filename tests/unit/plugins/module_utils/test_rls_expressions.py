"""The pure parts of the RLS checks (no server needed): how policy expressions, as pg_policies renders
them, are read; the structural policy verdicts; probe values generated from catalog types; input checks."""
from __future__ import annotations

import uuid

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import rls

OBSERVED = "(org_id = (NULLIF(current_setting('app.current_org_id'::text, true), ''::text))::uuid)"
JOIN = ("(EXISTS ( SELECT 1\n   FROM bookings b\n  WHERE ((b.booking_id = order_addons.order_id) AND (b.org_id = "
        "(NULLIF(current_setting('app.current_org_id'::text, true), ''::text))::uuid))))")


@pytest.mark.parametrize("expression, expected", [
    (OBSERVED, True),
    (JOIN, True),
    ("(org_id = (current_setting('app.current_org_id'::text))::uuid)", True),
    ("(org_id = (NULLIF(current_setting('app.org_id'::text, true), ''::text))::uuid)", False),
    ("(org_id = (NULLIF(current_setting('app.current_org_id_v2'::text, true), ''::text))::uuid)", False),
    ("true", False),
    (None, False),
])
def test_reads_setting(expression, expected):
    assert rls.reads_setting(expression, "app.current_org_id") is expected


def test_other_settings_and_column_reference():
    assert rls.other_settings("current_setting('app.org_id'::text, true) OR current_setting('x.y')") == ["app.org_id", "x.y"]
    assert rls.references_column(OBSERVED, "org_id")
    assert not rls.references_column("(tenant_org_id = 1)", "org_id")
    assert rls.references_column('("org_id" = 1)', "org_id")


def policy(name, qual, with_check=None, cmd="ALL", permissive=True, applies=True):
    return {"name": name, "permissive": permissive, "roles": ["public"], "cmd": cmd, "qual": qual,
            "with_check": with_check, "applies_to_role": applies}


def verdict(policies, info=None, missing=False):
    if info is None and not missing:
        info = {"has_org_column": True}
    ok, reasons, evidence = rls.check_policies("leads", info, policies, "leads_org_isolation", "app.current_org_id", "org_id")
    return ok, reasons, evidence


def test_policy_verdicts():
    ok, reasons, evidence = verdict([policy("leads_org_isolation", OBSERVED, OBSERVED)])
    assert ok and reasons == [] and evidence["policies"][0]["reads_setting"] is True
    ok, reasons, evidence = verdict([policy("leads_org_isolation", OBSERVED, OBSERVED), policy("leads_org_rls", OBSERVED)])
    assert ok and evidence["extra_policies"] == ["leads_org_rls"]
    ok, reasons, dummy = verdict([policy("leads_org_isolation", OBSERVED), policy("leads_debug", "true")])
    assert not ok and "leads_debug" in reasons[0] and "leak" in reasons[0]
    ok, reasons, dummy = verdict([policy("leads_org_isolation", OBSERVED), policy("leads_narrow", "true", permissive=False)])
    assert ok  # a restrictive policy only narrows
    ok, reasons, dummy = verdict([policy("leads_org_isolation", OBSERVED), policy("admins_only", "true", applies=False)])
    assert ok  # does not apply to the app role
    ok, reasons, dummy = verdict([policy("leads_org_isolation", OBSERVED.replace("app.current_org_id", "app.org_id"))])
    assert not ok and "reads app.org_id, not app.current_org_id" in reasons[0]
    ok, reasons, dummy = verdict([policy("leads_org_isolation", OBSERVED, "true")])
    assert not ok
    ok, reasons, dummy = verdict([])
    assert not ok and any("missing" in reason for reason in reasons)
    ok, reasons, dummy = verdict([policy("leads_org_isolation", "(current_setting('app.current_org_id'::text) IS NOT NULL)")])
    assert not ok and "does not compare the org_id column" in reasons[0]
    ok, reasons, dummy = verdict([policy("leads_org_isolation", JOIN)], {"has_org_column": False})
    assert ok
    ok, reasons, dummy = verdict([policy("leads_org_isolation", OBSERVED)], missing=True)
    assert not ok and reasons == [rls.missing_table_reason("tables")]
    assert "may be stale" in reasons[0]


def column(base, category, typmod=-1, first_enum=None, check=None, name="c"):
    return {"name": name, "type": base, "base_type": base, "category": category, "typmod": typmod,
            "first_enum": first_enum, "check": check, "not_null": True, "has_default": False, "generated": False}


@pytest.mark.parametrize("col, expected", [
    (column("text", "S"), "rlsprobe-0123456789ab"),
    (column("varchar", "S", typmod=12 + 4), "rlsprobe-012"),  # varchar(12)
    (column("bpchar", "S", typmod=4 + 4), "rlsp"),  # char(4)
    (column("int4", "N"), "1"),
    (column("numeric", "N", typmod=((3 << 16) | 3) + 4), "0"),
    (column("numeric", "N", typmod=((10 << 16) | 2) + 4), "1"),
    (column("bool", "B"), "false"),
    (column("date", "D"), "2000-01-01"),
    (column("timestamptz", "D"), "2000-01-01 00:00:00+00"),
    (column("interval", "T"), "1 hour"),
    (column("jsonb", "U"), "{}"),
    (column("_text", "A"), "{}"),
    (column("inet", "I"), "192.0.2.1"),
    (column("bit", "V", typmod=3), "000"),
    (column("booking_kind", "E", first_enum="standard"), "standard"),
    (column("text", "S", check="CHECK ((status = ANY (ARRAY['new'::text, 'won'::text])))"), "new"),
    (column("text", "S", check="CHECK (status IN ('it''s', 'b'))"), "it's"),
])
def test_probe_literal(col, expected):
    assert rls.probe_literal(col, "rlsprobe-0123456789ab") == expected


def test_probe_literal_uuid_and_unsupported():
    uuid.UUID(rls.probe_literal(column("uuid", "U"), "m"))
    with pytest.raises(rls.ProbeBuildError) as err:
        rls.probe_literal(column("point", "G", name="where"), "m")
    assert "where" in str(err.value) and "probe_values" in str(err.value)


@pytest.mark.parametrize("name, problem", [
    ("leads", None), ('Odd "Name"%s', None), ("", "is empty"), ("x" * 64, "longer"), ("a\nb", "control"), (" a", "blanks"),
])
def test_identifier_problem(name, problem):
    found = rls.identifier_problem(name)
    assert (found is None) if problem is None else (problem in found)


def test_setting_and_pattern_and_uuid_checks():
    assert rls.setting_problem("app.current_org_id") is None
    assert rls.setting_problem("nodot") and rls.setting_problem("app.x;drop")
    assert rls.pattern_problem("{table}_org_isolation") is None and rls.pattern_problem("{schema}_{table}") is None
    assert "{tbl}" in rls.pattern_problem("{tbl}_x") and rls.pattern_problem("{table")
    assert rls.policy_name("{table}_org_isolation", "public", "leads") == "leads_org_isolation"
    assert rls.uuid_problem(str(uuid.uuid4())) is None and rls.uuid_problem("nope")
    assert rls.to_parameter({"b": 1, "a": [1]}) == '{"a": [1], "b": 1}' and rls.to_parameter(3) == 3

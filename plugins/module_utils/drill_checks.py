# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verifications of the backup restore drill: expected facts (the source in the dump's
snapshot, a manifest, or the dump itself) against the facts of the restored database. Each
verification is a dict ``{name, status, summary, expected, actual, ...}`` with the detail that
explains a mismatch; a mismatch is ``fail``, a verification that cannot be decided is ``error``
and one without anything to compare is ``skipped``."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    ERROR, FAIL, PASS, SKIPPED, worst_status)

DEFAULT_MAX_ITEMS = 200


def _check(name, status, summary, expected=None, actual=None, **details):
    result = {"name": name, "status": status, "summary": summary, "expected": expected, "actual": actual}
    result.update(details)
    return result


def _key(schema, name):
    return "%s.%s" % (schema, name)


def _capped(items, max_items):
    items = list(items)
    if len(items) > max_items:
        return items[:max_items], len(items) - max_items
    return items, 0


def _excluded(key, patterns):
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns or ())


def check_revision(expected, actual, expected_revision=None, origin="source"):
    """The Alembic revision of the restored database equals the expected one (and the given
    ``expected_revision`` when the operator names it, e.g. the migration scripts' head)."""
    wanted = sorted(expected_revision) if expected_revision else None
    if expected is None and wanted is None:
        return _check("revision", SKIPPED, "no expected revision known", None, actual)
    problems = []
    exp_versions = None
    if expected is not None:
        exp_versions = sorted(expected.get("versions") or [])
        if not expected.get("present"):
            problems.append("version table %s is missing in the %s" % (expected.get("table"), origin))
        elif not exp_versions:
            problems.append("version table %s is empty in the %s" % (expected.get("table"), origin))
    act_versions = sorted((actual or {}).get("versions") or [])
    if not actual or not actual.get("present"):
        problems.append("version table %s is missing in the restored database" % (actual or expected or {}).get("table"))
    elif not act_versions:
        problems.append("version table %s is empty in the restored database" % actual.get("table"))
    if expected is not None and expected.get("present") and exp_versions and act_versions != exp_versions:
        problems.append("restored revision %s differs from the %s's %s" % (",".join(act_versions) or "none", origin, ",".join(exp_versions)))
    if wanted is not None and act_versions != wanted:
        problems.append("restored revision %s is not the expected %s" % (",".join(act_versions) or "none", ",".join(wanted)))
    exp = {"table": (expected or actual or {}).get("table"), "versions": exp_versions}
    if wanted is not None:
        exp["expected_revision"] = wanted
    act = {"present": bool(actual and actual.get("present")), "versions": act_versions}
    if problems:
        return _check("revision", FAIL, "; ".join(problems), exp, act)
    return _check("revision", PASS, "revision %s restored" % ",".join(act_versions), exp, act)


def _tables_by_key(facts):
    return dict((_key(t["schema"], t["name"]), t) for t in (facts or {}).get("tables") or [])


def check_tables(expected, actual, max_items=DEFAULT_MAX_ITEMS):
    exp = _tables_by_key(expected)
    act = _tables_by_key(actual)
    missing = sorted(set(exp) - set(act))
    extra = sorted(set(act) - set(exp))
    shown_missing, more_missing = _capped(missing, max_items)
    details = {"missing": shown_missing, "extra": _capped(extra, max_items)[0]}
    if more_missing:
        details["missing_not_shown"] = more_missing
    if missing or extra:
        summary = "%d table(s) missing, %d unexpected" % (len(missing), len(extra))
        return _check("tables", FAIL, summary, {"count": len(exp)}, {"count": len(act)}, **details)
    return _check("tables", PASS, "all %d tables present" % len(exp), {"count": len(exp)}, {"count": len(act)}, **details)


def check_row_counts(expected, actual, exclude_tables=(), max_items=DEFAULT_MAX_ITEMS):
    exp = _tables_by_key(expected)
    act = _tables_by_key(actual)
    compared = [key for key in sorted(exp) if exp[key].get("rows") is not None and not _excluded(key, exclude_tables)]
    if not compared:
        counted = [{"table": k, "rows": t.get("rows")} for k, t in sorted(act.items()) if t.get("rows") is not None]
        shown, more = _capped(counted, max_items)
        return _check("row_counts", SKIPPED, "no expected row counts (the dump has no manifest and no source to compare with); "
                      "restored counts listed", None, {"tables": len(counted), "rows": sum(c["rows"] for c in counted)},
                      restored=shown, restored_not_shown=more)
    mismatches = []
    per_table = []
    for key in compared:
        want = exp[key]["rows"]
        got = act.get(key, {}).get("rows")
        per_table.append({"table": key, "expected": want, "actual": got})
        if got != want:
            mismatches.append({"table": key, "expected": want, "actual": got})
    exp_total = sum(exp[k]["rows"] for k in compared)
    act_total = sum(act.get(k, {}).get("rows") or 0 for k in compared)
    shown, more = _capped(per_table, max_items)
    details = {"mismatches": _capped(mismatches, max_items)[0], "per_table": shown}
    if more:
        details["per_table_not_shown"] = more
    if exclude_tables:
        details["excluded_patterns"] = list(exclude_tables)
    expected_view = {"tables": len(compared), "rows": exp_total}
    actual_view = {"tables": len([k for k in compared if act.get(k, {}).get("rows") is not None]), "rows": act_total}
    if mismatches:
        return _check("row_counts", FAIL, "%d of %d table(s) differ in row count" % (len(mismatches), len(compared)),
                      expected_view, actual_view, **details)
    return _check("row_counts", PASS, "exact row counts on %d tables (%d rows)" % (len(compared), exp_total),
                  expected_view, actual_view, **details)


def check_checksums(expected, actual, checksum_max_rows, max_items=DEFAULT_MAX_ITEMS):
    exp = _tables_by_key(expected)
    act = _tables_by_key(actual)
    compared = [key for key in sorted(exp) if exp[key].get("checksum")]
    if not compared:
        reason = "content checksums disabled (checksum_max_rows is 0)" if not checksum_max_rows else \
            "no expected checksums (no table at or under %d rows, or no checksum in the expectations)" % checksum_max_rows
        return _check("checksums", SKIPPED, reason, None, None)
    mismatches = []
    for key in compared:
        got = act.get(key, {}).get("checksum")
        if got != exp[key]["checksum"]:
            mismatches.append({"table": key, "expected": exp[key]["checksum"], "actual": got})
    expected_view = {"tables": len(compared), "max_rows": checksum_max_rows}
    actual_view = {"tables_equal": len(compared) - len(mismatches)}
    details = {"mismatches": _capped(mismatches, max_items)[0], "tables_not_checksummed": len(exp) - len(compared)}
    if mismatches:
        return _check("checksums", FAIL, "content differs in %d of %d table(s)" % (len(mismatches), len(compared)),
                      expected_view, actual_view, **details)
    return _check("checksums", PASS, "content equal in %d table(s) of at most %d rows" % (len(compared), checksum_max_rows),
                  expected_view, actual_view, **details)


def check_rls_flags(expected, actual, max_items=DEFAULT_MAX_ITEMS):
    exp = _tables_by_key(expected)
    act = _tables_by_key(actual)
    mismatches = []
    for key in sorted(set(exp) & set(act)):
        want = (exp[key]["rls_enabled"], exp[key]["rls_forced"])
        got = (act[key]["rls_enabled"], act[key]["rls_forced"])
        if want != got:
            mismatches.append({"table": key, "expected": {"enabled": want[0], "forced": want[1]},
                               "actual": {"enabled": got[0], "forced": got[1]}})
    forced = sorted(k for k in exp if exp[k]["rls_forced"])
    enabled = sorted(k for k in exp if exp[k]["rls_enabled"])
    expected_view = {"enabled": len(enabled), "forced": len(forced)}
    actual_view = {"enabled": len([k for k in act if act[k]["rls_enabled"]]), "forced": len([k for k in act if act[k]["rls_forced"]])}
    details = {"mismatches": _capped(mismatches, max_items)[0], "forced_tables": _capped(forced, max_items)[0]}
    if mismatches:
        return _check("rls_flags", FAIL, "relrowsecurity/relforcerowsecurity differ on %d table(s)" % len(mismatches),
                      expected_view, actual_view, **details)
    return _check("rls_flags", PASS, "RLS enabled on %d and forced on %d table(s), as expected" % (len(enabled), len(forced)),
                  expected_view, actual_view, **details)


_POLICY_FIELDS = ("permissive", "roles", "cmd", "qual", "with_check")


def check_policies(expected, actual, max_items=DEFAULT_MAX_ITEMS):
    def by_key(facts):
        return dict(((p["schema"], p["table"], p["name"]), p) for p in (facts or {}).get("policies") or [])

    exp = by_key(expected)
    act = by_key(actual)
    missing = ["%s on %s" % (k[2], _key(k[0], k[1])) for k in sorted(set(exp) - set(act))]
    extra = ["%s on %s" % (k[2], _key(k[0], k[1])) for k in sorted(set(act) - set(exp))]
    changed = []
    for key in sorted(set(exp) & set(act)):
        diffs = {}
        if exp[key].get("cmd") is None:
            continue  # definitions unknown (expectations read from a dump's script): names only
        for field in _POLICY_FIELDS:
            want = exp[key].get(field)
            if act[key].get(field) != want:
                diffs[field] = {"expected": want, "actual": act[key].get(field)}
        if diffs:
            changed.append({"policy": "%s on %s" % (key[2], _key(key[0], key[1])), "differences": diffs})
    details = {"missing": _capped(missing, max_items)[0], "extra": _capped(extra, max_items)[0],
               "changed": _capped(changed, max_items)[0]}
    expected_view = {"count": len(exp), "tables": len(set((k[0], k[1]) for k in exp))}
    actual_view = {"count": len(act), "tables": len(set((k[0], k[1]) for k in act))}
    if missing or extra or changed:
        return _check("policies", FAIL, "%d policy(ies) missing, %d unexpected, %d changed" % (len(missing), len(extra), len(changed)),
                      expected_view, actual_view, **details)
    return _check("policies", PASS, "all %d RLS policies present and unchanged" % len(exp), expected_view, actual_view, **details)


def check_privileges(expected, actual, probe=None, app_role=None, restore_privileges=True, max_items=DEFAULT_MAX_ITEMS):
    """The application role can still do on the restored tables what it could in the source."""
    if not app_role:
        return _check("app_privileges", SKIPPED, "no app_role given", None, None)
    if expected is None:
        return _check("app_privileges", SKIPPED, "no expected privileges known for %s" % app_role, None, None)
    if not expected.get("role_exists"):
        return _check("app_privileges", ERROR, "app_role %s does not exist in the source: nothing to compare" % app_role, None, None)
    if actual is None or not actual.get("role_exists"):
        return _check("app_privileges", FAIL, "app_role %s does not exist on the restore target" % app_role,
                      {"role": app_role}, {"role_exists": False})
    act_tables = dict((_key(t["schema"], t["name"]), set(t["privileges"])) for t in actual.get("tables") or [])
    lost = []
    gained = []
    expected_grants = 0
    for entry in expected.get("tables") or []:
        key = _key(entry["schema"], entry["name"])
        want = set(entry["privileges"])
        expected_grants += len(want)
        got = act_tables.get(key, set())
        if want - got:
            lost.append({"table": key, "lost": sorted(want - got), "expected": sorted(want), "actual": sorted(got)})
        if got - want and not expected.get("partial"):
            gained.append({"table": key, "gained": sorted(got - want)})
    act_schemas = dict((s["schema"], s["usage"]) for s in actual.get("schemas") or [])
    lost_schemas = sorted(s["schema"] for s in expected.get("schemas") or [] if s["usage"] and not act_schemas.get(s["schema"]))
    act_sequences = dict((_key(s["schema"], s["name"]), s["usage"]) for s in actual.get("sequences") or [])
    lost_sequences = sorted(_key(s["schema"], s["name"]) for s in expected.get("sequences") or []
                            if s["usage"] and not act_sequences.get(_key(s["schema"], s["name"])))
    denied = (probe or {}).get("denied") or []
    details = {
        "lost_grants": _capped(lost, max_items)[0],
        "lost_schema_usage": lost_schemas,
        "lost_sequence_usage": _capped(lost_sequences, max_items)[0],
        "probe": {"ran": bool(probe and probe.get("ran")), "statements": (probe or {}).get("probed", 0),
                  "denied": _capped(denied, max_items)[0], "errors": _capped((probe or {}).get("errors") or [], 20)[0],
                  "reason": (probe or {}).get("reason")},
        "restore_privileges": restore_privileges,
    }
    if gained:
        details["gained_grants"] = _capped(gained, max_items)[0]
    granted_tables = len([t for t in expected.get("tables") or [] if t["privileges"]])
    expected_view = {"role": app_role, "tables": granted_tables, "grants": expected_grants}
    actual_view = {"tables_with_lost_grants": len(lost), "denied_by_probe": len(denied)}
    if lost or lost_schemas or lost_sequences or denied:
        parts = []
        if lost:
            parts.append("grants lost on %d table(s) (%s)" % (len(lost), ", ".join(item["table"] for item in lost[:5]) + (", ..." if len(lost) > 5 else "")))
        if lost_schemas:
            parts.append("USAGE lost on schema(s) %s" % ", ".join(lost_schemas))
        if lost_sequences:
            parts.append("USAGE lost on %d sequence(s)" % len(lost_sequences))
        if denied:
            parts.append("%d statement(s) denied when run as %s" % (len(denied), app_role))
        hint = "" if restore_privileges else " (restored without privileges: re-grant before the app can use it)"
        return _check("app_privileges", FAIL, "%s: %s%s" % (app_role, "; ".join(parts), hint), expected_view, actual_view, **details)
    summary = "%s keeps its %d grant(s) on %d table(s)" % (app_role, expected_grants, granted_tables)
    if probe and probe.get("ran"):
        summary += "; %d statement(s) run as %s were allowed" % (probe.get("probed", 0), app_role)
    return _check("app_privileges", PASS, summary, expected_view, actual_view, **details)


def check_sequences(actual_sequences, max_items=DEFAULT_MAX_ITEMS):
    """Every sequence feeding an integer column is not behind its table: last_value >= max(column)."""
    if actual_sequences is None:
        return _check("sequences", SKIPPED, "sequences not read", None, None)
    behind = []
    for seq in actual_sequences:
        top = seq.get("max_in_table")
        if top is None or (seq.get("increment") or 1) < 0:
            continue
        last = seq.get("last_value")
        if (last is None and (seq.get("start_value") or 1) <= top) or (last is not None and last < top):
            behind.append({"sequence": _key(seq["schema"], seq["name"]), "table": _key(seq["table_schema"], seq["table"]),
                           "column": seq["column"], "last_value": last, "max_in_table": top})
    expected_view = "last_value >= max(column) for %d sequence(s)" % len(actual_sequences)
    details = {"behind": _capped(behind, max_items)[0]}
    if behind:
        return _check("sequences", FAIL, "%d sequence(s) behind their table: the next insert would collide" % len(behind),
                      expected_view, {"behind": len(behind)}, **details)
    return _check("sequences", PASS, "%d sequence(s) at or ahead of their table's maximum" % len(actual_sequences),
                  expected_view, {"behind": 0}, **details)


def overall(checks):
    """The status of a list of verifications (error beats fail beats pass; all skipped is skipped)."""
    statuses = [c["status"] for c in checks]
    decided = [s for s in statuses if s != SKIPPED]
    return worst_status(decided) if decided else SKIPPED

"""The backup restore drill's module_utils without a database: client program discovery and version
checks (with small real executables standing in for old and new clients), argument lists and the libpq
environment (the password never on a command line), stderr redaction, dump files, markers and manifests,
the parsing of a dump's schema script and every verification's verdict."""
from __future__ import annotations

import datetime
import json
import os
import stat
import subprocess

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import drill_catalog as catalog
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import drill_checks as checks
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import drill_files as files
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import pg_tools

CANARY = "canary-drill-Qx7"


def run_command(args, expand_user_and_vars=True, handle_exceptions=True):
    """The shape of AnsibleModule.run_command, running the program for real."""
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def fake_client(directory, name, version):
    """An executable that answers --version like a PostgreSQL client of ``version``."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\necho '%s (PostgreSQL) %s (Debian %s-1)'\n" % (name, version, version))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# -- versions and discovery ------------------------------------------------------------------

@pytest.mark.parametrize("text, major, label", [
    ("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", 1500, "15.18"),
    ("pg_restore (PostgreSQL) 16.2", 1600, "16.2"),
    ("pg_dump (PostgreSQL) 9.6.24", 906, "9.6"),
    ("pg_dump (PostgreSQL) 17", 1700, "17.0"),
])
def test_parse_client_version(text, major, label):
    assert pg_tools.parse_client_version(text) == (major, label)


def test_parse_client_version_rejects_garbage():
    with pytest.raises(ValueError):
        pg_tools.parse_client_version("command not found")


@pytest.mark.parametrize("num, major, label", [(150018, 1500, "15"), (90624, 906, "9.6"), (170000, 1700, "17")])
def test_server_version_major(num, major, label):
    assert pg_tools.version_num_major(num) == major
    assert pg_tools.major_label(major) == label


def test_explicit_client_older_than_server_is_refused_clearly(tmp_path):
    old = fake_client(str(tmp_path / "14"), "pg_dump", "14.11")
    with pytest.raises(pg_tools.ToolError) as err:
        pg_tools.find_tool(run_command, "pg_dump", 1500, explicit=old, minimum_reason="the source server")
    message = str(err.value)
    assert "pg_dump is older than the source server (PostgreSQL 15)" in message
    assert "14.11" in message and old in message and "bindir" in message


def test_missing_explicit_client_and_bindir(tmp_path):
    with pytest.raises(pg_tools.ToolError) as err:
        pg_tools.find_tool(run_command, "pg_restore", 1500, explicit=str(tmp_path / "pg_restore"))
    assert "pg_restore not found or not executable at" in str(err.value)
    with pytest.raises(pg_tools.ToolError) as err:
        pg_tools.find_tool(run_command, "pg_restore", 1500, bindir=str(tmp_path))
    assert "in bindir %s" % tmp_path in str(err.value)


def test_search_picks_the_closest_client_not_older_than_the_server(tmp_path):
    fake_client(str(tmp_path / "a"), "pg_dump", "14.9")
    fake_client(str(tmp_path / "b"), "pg_dump", "17.1")
    fake_client(str(tmp_path / "c"), "pg_dump", "15.6")
    environ = {"PATH": os.pathsep.join(str(tmp_path / d) for d in ("a", "b", "c"))}
    original = pg_tools.SEARCH_GLOBS
    pg_tools.SEARCH_GLOBS = ()
    try:
        tool = pg_tools.find_tool(run_command, "pg_dump", 1500, environ=environ)
        assert tool.version == "15.6" and tool.path == str(tmp_path / "c" / "pg_dump")
        tool = pg_tools.find_tool(run_command, "pg_dump", 1600, environ=environ)
        assert tool.version == "17.1"
        with pytest.raises(pg_tools.ToolError) as err:
            pg_tools.find_tool(run_command, "pg_dump", 1800, environ=environ)
        assert "older than the server (PostgreSQL 18)" in str(err.value) and "17.1" in str(err.value)
        # A preferred directory (the one pg_dump came from) wins among equals.
        fake_client(str(tmp_path / "d"), "pg_dump", "15.6")
        tool = pg_tools.find_tool(run_command, "pg_dump", 1500, environ=environ, prefer_dirs=[str(tmp_path / "d")])
        assert tool.path == str(tmp_path / "d" / "pg_dump")
    finally:
        pg_tools.SEARCH_GLOBS = original


def test_versioned_directories_sort_newest_first():
    paths = ["/usr/lib/postgresql/9.6/bin/pg_dump", "/usr/lib/postgresql/16/bin/pg_dump", "/usr/pgsql-13/bin/pg_dump"]
    assert sorted(paths, key=pg_tools._dir_version_key, reverse=True)[0] == "/usr/lib/postgresql/16/bin/pg_dump"


# -- argument lists and environment ----------------------------------------------------------

def test_password_travels_in_the_environment_never_in_arguments():
    tool = pg_tools.Tool("pg_dump", "/usr/bin/pg_dump", 1500, "15.6")
    kwargs = {"host": "db", "port": 5432, "user": "postgres", "password": CANARY, "dbname": "cleaning",
              "sslmode": "require", "application_name": "x", "connect_timeout": 10}
    env = pg_tools.libpq_environment(kwargs)
    assert env == {"PGHOST": "db", "PGPORT": "5432", "PGUSER": "postgres", "PGPASSWORD": CANARY, "PGDATABASE": "cleaning",
                   "PGSSLMODE": "require", "PGAPPNAME": "x", "PGCONNECT_TIMEOUT": "10"}
    args = pg_tools.pg_dump_args(tool, "/backups/x.dump.partial", snapshot="00000003-1", compress=6, schemas=["public"])
    assert args == ["/usr/bin/pg_dump", "--format=custom", "--no-password", "--file=/backups/x.dump.partial",
                    "--snapshot=00000003-1", "--compress=6", "--schema=public"]
    restore = pg_tools.pg_restore_args(pg_tools.Tool("pg_restore", "/usr/bin/pg_restore", 1500, "15.6"), "/b/x.dump",
                                       "cws_drill_1", jobs=4, privileges=False, owner=False)
    assert restore == ["/usr/bin/pg_restore", "--no-password", "--dbname=cws_drill_1", "--jobs=4", "--no-privileges",
                       "--no-owner", "/b/x.dump"]
    assert not any(CANARY in arg for arg in args + restore)


def test_unknown_connection_keyword_is_refused():
    with pytest.raises(ValueError) as err:
        pg_tools.libpq_environment({"host": "h", "keepalives_weird": "1"})
    assert "keepalives_weird" in str(err.value)


def test_stderr_is_redacted_truncated_and_its_errors_listed():
    text = "pg_restore: error: could not connect: password=%s\n" % CANARY + "x" * 9000 + "\npg_restore: error: last one\n"
    summary = pg_tools.summarize_stderr(text, secrets=[CANARY], max_chars=1000)
    assert CANARY not in json.dumps(summary)
    assert summary["stderr_truncated"] is True and len(summary["stderr"]) < 1200
    assert summary["error_count"] == 2 and summary["error_lines"][-1] == "pg_restore: error: last one"


def test_connection_failures_are_told_apart_from_archive_errors():
    assert pg_tools.is_connection_failure('pg_restore: error: connection to server at "h" (1.2.3.4), port 5432 failed: FATAL: x')
    assert not pg_tools.is_connection_failure("pg_restore: error: could not read from input file: end of file")


# -- files -----------------------------------------------------------------------------------

def test_scratch_names_are_unique_valid_and_recognisable():
    moment = datetime.datetime(2026, 2, 24, 10, 11, 12, tzinfo=datetime.timezone.utc)
    name = files.scratch_name("cws_drill", moment, "a1b2c3")
    assert name == "cws_drill_20260224101112_a1b2c3"
    assert files.SCRATCH_NAME.match(name)
    import re
    assert re.match(files.scratch_pattern("cws_drill"), name)
    assert not re.match(files.scratch_pattern("cws_drill"), "cws_drill_prod")
    assert files.scratch_name("cws_drill") != files.scratch_name("cws_drill")
    assert len(files.scratch_name("x" * 41)) <= 63


def test_marker_is_an_iso_utc_timestamp_the_service_parses(tmp_path):
    marker = tmp_path / "LAST_SUCCESS.txt"
    marker.write_text("old")
    stamp = files.write_marker(str(marker))
    raw = marker.read_text().strip()
    assert raw == stamp
    parsed = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00"))  # what /healthz/backup does
    assert parsed.utcoffset() == datetime.timedelta(0)
    assert [p.name for p in tmp_path.iterdir()] == ["LAST_SUCCESS.txt"]  # no temporary file left


def test_atomic_write_leaves_the_old_content_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "LAST_SUCCESS.txt"
    target.write_text("2026-01-01T00:00:00+00:00\n")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(files.os, "replace", broken_replace)
    with pytest.raises(OSError):
        files.write_marker(str(target))
    assert target.read_text() == "2026-01-01T00:00:00+00:00\n"
    assert [p.name for p in tmp_path.iterdir()] == ["LAST_SUCCESS.txt"]


def test_sidecar_and_sha256(tmp_path):
    dump = tmp_path / "a.dump"
    dump.write_bytes(b"PGDMP" + b"\0" * 100)
    digest = files.sha256_file(str(dump))
    assert files.read_sidecar_sha256(str(dump)) is None
    files.write_sidecar(str(dump), digest)
    assert (tmp_path / "a.dump.sha256").read_text() == "%s  a.dump\n" % digest
    assert files.read_sidecar_sha256(str(dump)) == digest
    (tmp_path / "a.dump.sha256").write_text("not a digest\n")
    with pytest.raises(ValueError):
        files.read_sidecar_sha256(str(dump))


def test_newest_dump_ignores_sidecars_partials_and_hidden(tmp_path):
    for index, name in enumerate(["old.dump", "new.dump", "new.dump.sha256", "new.dump.manifest.json", "newer.dump.partial",
                                  ".hidden.dump", "notes.txt"]):
        path = tmp_path / name
        path.write_text(name)
        os.utime(path, (1000 + index, 1000 + index))
    (tmp_path / "dir.dump").mkdir()
    assert files.newest_dump(str(tmp_path), "*.dump") == str(tmp_path / "new.dump")
    assert files.newest_dump(str(tmp_path), "*.sql") is None


def test_manifest_round_trip_and_rejection(tmp_path):
    dump = tmp_path / "a.dump"
    dump.write_text("x")
    assert files.read_manifest(str(dump)) is None
    files.write_manifest(str(dump), {"format": files.MANIFEST_FORMAT, "sha256": "ab", "facts": {"tables": []}})
    assert files.read_manifest(str(dump))["sha256"] == "ab"
    assert stat.S_IMODE(os.stat(str(dump) + ".manifest.json").st_mode) == 0o600
    (tmp_path / "a.dump.manifest.json").write_text("{")
    with pytest.raises(ValueError):
        files.read_manifest(str(dump))
    (tmp_path / "a.dump.manifest.json").write_text('{"format": 99}')
    with pytest.raises(ValueError):
        files.read_manifest(str(dump))


# -- facts from a dump's script --------------------------------------------------------------

SCHEMA_SCRIPT = r'''
CREATE SCHEMA reporting;
CREATE TABLE public."Order Items" (
    id integer NOT NULL
);
CREATE TABLE public.bookings (
    id bigint NOT NULL
);
ALTER TABLE ONLY public.bookings FORCE ROW LEVEL SECURITY;
CREATE UNLOGGED TABLE reporting.daily (
    day date
);
CREATE TABLE public.alembic_version (
    version_num character varying(32) NOT NULL
);
CREATE FOREIGN TABLE public.remote (
    x integer
);
ALTER TABLE public.bookings ENABLE ROW LEVEL SECURITY;
CREATE POLICY bookings_org_isolation ON public.bookings USING ((org_id = x)) WITH CHECK ((org_id = x));
CREATE POLICY "Odd Policy" ON public."Order Items" USING (true);
GRANT USAGE ON SCHEMA reporting TO app;
GRANT SELECT,INSERT,DELETE,UPDATE ON TABLE public.bookings TO app;
GRANT ALL ON TABLE public."Order Items" TO app;
GRANT SELECT ON TABLE reporting.daily TO other;
GRANT SELECT ON TABLE public.alembic_version TO PUBLIC;
GRANT SELECT,USAGE ON SEQUENCE public.bookings_id_seq TO app;
'''


def test_facts_from_schema_script():
    facts = catalog.facts_from_schema_script(SCHEMA_SCRIPT, app_role="app")
    tables = dict(((t["schema"], t["name"]), t) for t in facts["tables"])
    assert set(tables) == {("public", "Order Items"), ("public", "bookings"), ("reporting", "daily"), ("public", "alembic_version")}
    assert tables[("public", "bookings")]["rls_enabled"] and tables[("public", "bookings")]["rls_forced"]
    assert not tables[("public", "Order Items")]["rls_enabled"]
    assert [(p["table"], p["name"]) for p in facts["policies"]] == [("bookings", "bookings_org_isolation"), ("Order Items", "Odd Policy")]
    grants = dict(((t["schema"], t["name"]), t["privileges"]) for t in facts["privileges"]["tables"])
    assert grants == {("public", "Order Items"): ["DELETE", "INSERT", "SELECT", "UPDATE"],
                      ("public", "alembic_version"): ["SELECT"],
                      ("public", "bookings"): ["DELETE", "INSERT", "SELECT", "UPDATE"]}
    assert facts["privileges"]["schemas"] == [{"schema": "reporting", "usage": True}]
    assert facts["privileges"]["sequences"] == [{"schema": "public", "name": "bookings_id_seq", "usage": True}]
    only_public = catalog.facts_from_schema_script(SCHEMA_SCRIPT, schemas=["public"])
    assert all(t["schema"] == "public" for t in only_public["tables"]) and only_public["privileges"] is None


def test_revision_from_data_script():
    script = "SET x = 1;\nCOPY public.other (a) FROM stdin;\nnope\n\\.\nCOPY public.alembic_version (version_num) FROM stdin;\n" \
             "merge_b\nmerge_a\n\\.\n"
    assert catalog.revision_from_data_script(script, "public", "alembic_version") == {
        "table": "public.alembic_version", "present": True, "versions": ["merge_a", "merge_b"]}
    assert catalog.revision_from_data_script("", "public", "alembic_version")["present"] is False


# -- verifications ---------------------------------------------------------------------------

def table(name, rows=10, checksum=None, enabled=False, forced=False, schema="public"):
    return {"schema": schema, "name": name, "kind": "r", "rls_enabled": enabled, "rls_forced": forced, "rows": rows,
            "checksum": checksum}


def facts(tables, policies=(), revision=("head",), privileges=None):
    return {"tables": list(tables), "policies": list(policies), "privileges": privileges,
            "revision": {"table": "public.alembic_version", "present": revision is not None, "versions": list(revision or [])}}


def test_revision_verdicts():
    same = checks.check_revision(facts([])["revision"], facts([])["revision"])
    assert same["status"] == "pass"
    differ = checks.check_revision(facts([], revision=("a",))["revision"], facts([], revision=("b",))["revision"])
    assert differ["status"] == "fail" and differ["expected"]["versions"] == ["a"] and differ["actual"]["versions"] == ["b"]
    missing = checks.check_revision(facts([])["revision"], facts([], revision=None)["revision"])
    assert missing["status"] == "fail" and "missing in the restored database" in missing["summary"]
    empty_source = checks.check_revision(facts([], revision=())["revision"], facts([], revision=())["revision"])
    assert empty_source["status"] == "fail"
    wanted = checks.check_revision(facts([])["revision"], facts([])["revision"], expected_revision=["other"])
    assert wanted["status"] == "fail" and wanted["expected"]["expected_revision"] == ["other"]


def test_tables_counts_and_checksums():
    exp = facts([table("a", 5, "x"), table("b", 7, "y"), table("gone", 1)])
    act = facts([table("a", 5, "x"), table("b", 6, "z"), table("new", 0)])
    tables = checks.check_tables(exp, act)
    assert tables["status"] == "fail" and tables["missing"] == ["public.gone"] and tables["extra"] == ["public.new"]
    counts = checks.check_row_counts(exp, act)
    assert counts["status"] == "fail"
    assert counts["mismatches"] == [{"table": "public.b", "expected": 7, "actual": 6},
                                    {"table": "public.gone", "expected": 1, "actual": None}]
    assert checks.check_row_counts(exp, act, exclude_tables=["public.b", "public.g*"])["status"] == "pass"
    sums = checks.check_checksums(exp, act, 100)
    assert sums["status"] == "fail" and sums["mismatches"] == [{"table": "public.b", "expected": "y", "actual": "z"}]
    assert checks.check_checksums(facts([table("a")]), facts([table("a")]), 0)["status"] == "skipped"
    no_counts = checks.check_row_counts(facts([table("a", None)]), act)
    assert no_counts["status"] == "skipped" and no_counts["actual"]["rows"] == 11


def test_rls_flags_and_policies():
    exp = facts([table("a", enabled=True, forced=True)], policies=[
        {"schema": "public", "table": "a", "name": "a_org_isolation", "permissive": "PERMISSIVE", "roles": ["public"],
         "cmd": "ALL", "qual": "(org_id = x)", "with_check": "(org_id = x)"}])
    act = facts([table("a", enabled=True, forced=False)], policies=[
        dict(exp["policies"][0], qual="true"),
        {"schema": "public", "table": "a", "name": "extra", "permissive": "PERMISSIVE", "roles": ["public"], "cmd": "ALL",
         "qual": None, "with_check": None}])
    flags = checks.check_rls_flags(exp, act)
    assert flags["status"] == "fail" and flags["mismatches"][0]["expected"] == {"enabled": True, "forced": True}
    policies = checks.check_policies(exp, act)
    assert policies["status"] == "fail" and policies["extra"] == ["extra on public.a"]
    assert policies["changed"][0]["differences"] == {"qual": {"expected": "(org_id = x)", "actual": "true"}}
    # Names only when the expectations come from a dump's script.
    names_only = dict(exp["policies"][0], permissive=None, roles=None, cmd=None, qual=None, with_check=None)
    assert checks.check_policies(facts([], policies=[names_only]), facts([], policies=[dict(exp["policies"][0], qual="true")]))["status"] == "pass"


def privileges(tables, schemas=(), sequences=(), exists=True):
    return {"role": "app", "role_exists": exists,
            "tables": [{"schema": "public", "name": n, "privileges": sorted(p)} for n, p in tables.items()],
            "schemas": [{"schema": s, "usage": u} for s, u in schemas],
            "sequences": [{"schema": "public", "name": s, "usage": u} for s, u in sequences]}


def test_privilege_verdicts():
    exp = privileges({"a": ["SELECT", "INSERT"], "b": ["SELECT"], "c": []}, [("reporting", True)], [("a_id_seq", True)])
    same = checks.check_privileges(exp, exp, {"ran": True, "probed": 3, "denied": [], "errors": []}, "app")
    assert same["status"] == "pass" and same["expected"] == {"role": "app", "tables": 2, "grants": 3}
    lost = checks.check_privileges(exp, privileges({"a": ["SELECT"], "b": [], "c": []}, [("reporting", False)], [("a_id_seq", False)]),
                                   None, "app", restore_privileges=False)
    assert lost["status"] == "fail"
    assert lost["lost_grants"] == [{"table": "public.a", "lost": ["INSERT"], "expected": ["INSERT", "SELECT"], "actual": ["SELECT"]},
                                   {"table": "public.b", "lost": ["SELECT"], "expected": ["SELECT"], "actual": []}]
    assert lost["lost_schema_usage"] == ["reporting"] and lost["lost_sequence_usage"] == ["public.a_id_seq"]
    assert "without privileges" in lost["summary"]
    denied = checks.check_privileges(exp, exp, {"ran": True, "probed": 3, "errors": [],
                                                "denied": [{"table": "public.a", "privilege": "SELECT", "error": "permission denied"}]}, "app")
    assert denied["status"] == "fail" and "denied" in denied["summary"]
    assert checks.check_privileges(exp, privileges({}, exists=False), None, "app")["status"] == "fail"
    assert checks.check_privileges(privileges({}, exists=False), exp, None, "app")["status"] == "error"
    assert checks.check_privileges(None, None, None, None)["status"] == "skipped"


def test_sequence_verdicts():
    def seq(last, top, start=1, increment=1):
        return {"schema": "public", "name": "s", "table_schema": "public", "table": "t", "column": "id", "last_value": last,
                "start_value": start, "increment": increment, "max_in_table": top}
    assert checks.check_sequences([seq(10, 10), seq(None, None), seq(5, None)])["status"] == "pass"
    behind = checks.check_sequences([seq(9, 10), seq(None, 1), seq(100, 5, increment=-1)])
    assert behind["status"] == "fail" and len(behind["behind"]) == 2
    assert checks.check_sequences(None)["status"] == "skipped"


def test_overall_status():
    assert checks.overall([{"status": "pass"}, {"status": "skipped"}]) == "pass"
    assert checks.overall([{"status": "pass"}, {"status": "fail"}, {"status": "error"}]) == "error"
    assert checks.overall([{"status": "skipped"}]) == "skipped"

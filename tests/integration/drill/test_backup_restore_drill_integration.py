"""The backup restore drill against a real PostgreSQL server: a passing drill with every
verification, and the faults it must catch; after each run no scratch database is left and the
source's content is unchanged; the canary password never appears in anything the module prints."""
from __future__ import annotations

import datetime
import json
import os
import shutil

import pytest
from psycopg2 import sql

from drill_dbhelpers import REVISION, connect, drop_database, fingerprint, list_databases, seed

pytestmark = pytest.mark.integration

VERIFICATIONS = ["revision", "tables", "row_counts", "checksums", "rls_flags", "policies", "app_privileges", "sequences"]


def records(result):
    return dict((record["name"], record) for record in result["records"])


def checks_of(result):
    return dict((check["name"], check) for check in result["drill"]["checks"])


def assert_no_leak(result, *secrets):
    for secret in secrets:
        assert secret not in result.raw


@pytest.fixture()
def source_guard(drill_env, scratch_databases):
    """Fingerprint of the source before the test; after it, the same fingerprint and no scratch database."""
    before = fingerprint(drill_env["server"], drill_env["source_db"])
    yield
    assert fingerprint(drill_env["server"], drill_env["source_db"]) == before, "the source database changed"
    assert scratch_databases() == [], "a scratch database was left behind"


def test_drill_passes_with_every_verification(module_runner, drill_env, drill_args, source_guard, tmp_path):
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    marker = backup_dir / "LAST_SUCCESS.txt"
    args = dict(drill_args, backup_dir=str(backup_dir), keep_dump=True, marker_file=str(marker), rto_seconds=300,
                expected_revision=[REVISION], checksum_max_rows=5000)
    result = module_runner("backup_restore_drill", args)
    assert_no_leak(result, drill_env["admin_password"])
    assert result["status"] == "pass", json.dumps(result["records"][0], indent=1)[:4000]
    by_name = records(result)
    assert set(by_name) == {"backup.drill", "dump", "restore", "verify", "rto"}
    assert by_name["backup.drill"]["blocking"] is True and by_name["backup.drill"]["criterion"] == "backup.drill"
    assert all(by_name[name]["status"] == "pass" for name in ("dump", "restore", "verify", "rto"))
    assert all(by_name[name]["blocking"] is False for name in ("dump", "restore", "verify", "rto"))
    checks = checks_of(result)
    assert list(checks) == VERIFICATIONS
    for name in VERIFICATIONS:
        assert checks[name]["status"] == "pass", checks[name]
        assert "expected" in checks[name] and "actual" in checks[name]
    assert checks["revision"]["actual"]["versions"] == [REVISION]
    assert checks["tables"]["expected"]["count"] == 9
    assert checks["row_counts"]["expected"]["rows"] == checks["row_counts"]["actual"]["rows"] == 2000 + 1000 + 120 + 300 + 50 + 100 + 3 + 1
    assert checks["checksums"]["expected"]["tables"] == 9  # every table is under 5000 rows
    assert checks["rls_flags"]["expected"] == {"enabled": 3, "forced": 3}
    assert checks["policies"]["expected"]["count"] == 4
    assert checks["app_privileges"]["probe"]["ran"] and checks["app_privileges"]["probe"]["statements"] >= 20
    assert checks["sequences"]["actual"] == {"behind": 0}
    drill = result["drill"]
    assert drill["expected_from"] == "source" and drill["dump"]["snapshot_consistent"] is True
    assert drill["cleanup"]["scratch_dropped"] is True
    assert drill["scratch_db"].startswith(drill_env["prefix"] + "_")
    for key in ("dump_s", "restore_s", "verify_s", "total_s"):
        assert drill["timings"][key] is not None and drill["timings"][key] >= 0
    # The dump is kept with its checksum and manifest; the marker holds an ISO-8601 UTC timestamp.
    dump = drill["dump"]["file"]
    assert os.path.dirname(dump) == str(backup_dir) and os.path.exists(dump)
    assert open(dump + ".sha256").read().split()[0] == drill["dump"]["sha256"]
    manifest = json.load(open(dump + ".manifest.json"))
    assert manifest["sha256"] == drill["dump"]["sha256"] and manifest["facts"]["revision"]["versions"] == [REVISION]
    stamp = datetime.datetime.fromisoformat(marker.read_text().strip().replace("Z", "+00:00"))
    assert stamp.tzinfo is not None
    assert abs((datetime.datetime.now(datetime.timezone.utc) - stamp).total_seconds()) < 120
    assert result["changed"] is True
    assert not [p for p in os.listdir(backup_dir) if p.endswith((".partial", ".tmp")) or p.startswith(".")]


def test_latest_dump_verified_against_its_manifest(module_runner, drill_env, drill_args, source_guard, tmp_path):
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    first = module_runner("backup_restore_drill", dict(drill_args, backup_dir=str(backup_dir), keep_dump=True))
    assert first["status"] == "pass"
    rto = [r for r in first["records"] if r["name"] == "rto"][0]  # no rto_seconds given
    assert rto["status"] == "skipped" and rto["skip_reason"] == "not_requested"
    args = dict(drill_args, backup_source="latest", backup_dir=str(backup_dir))
    result = module_runner("backup_restore_drill", args)
    assert_no_leak(result, drill_env["admin_password"])
    assert result["status"] == "pass", result["records"][0]["summary"]
    assert result["drill"]["expected_from"] == "manifest"
    assert result["drill"]["dump"]["file"] == first["drill"]["dump"]["file"]
    assert result["drill"]["dump"]["sha256_checked_against"].startswith("sidecar")
    assert checks_of(result)["row_counts"]["status"] == "pass"
    assert result["changed"] is False


def test_dump_without_manifest_verified_against_the_dump_itself(module_runner, drill_env, drill_args, source_guard, tmp_path):
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    first = module_runner("backup_restore_drill", dict(drill_args, backup_dir=str(backup_dir), keep_dump=True))
    dump = first["drill"]["dump"]["file"]
    os.unlink(dump + ".manifest.json")
    result = module_runner("backup_restore_drill", dict(drill_args, backup_source="file", dump_file=dump,
                                                        expected_revision=[REVISION]))
    assert result["status"] == "pass", result["records"][0]["summary"]
    assert result["drill"]["expected_from"] == "dump"
    checks = checks_of(result)
    assert checks["revision"]["status"] == "pass" and checks["tables"]["status"] == "pass"
    assert checks["policies"]["status"] == "pass" and checks["policies"]["expected"]["count"] == 4
    assert checks["rls_flags"]["expected"] == {"enabled": 3, "forced": 3}
    assert checks["app_privileges"]["status"] == "pass"
    assert checks["row_counts"]["status"] == "skipped"


def test_truncated_dump_fails_and_leaves_nothing(module_runner, drill_env, drill_args, source_guard, tmp_path):
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    first = module_runner("backup_restore_drill", dict(drill_args, backup_dir=str(backup_dir), keep_dump=True))
    dump = first["drill"]["dump"]["file"]
    size = os.path.getsize(dump)
    # A copy cut at 60% with no sidecar: only the restore can notice.
    bare = tmp_path / "bare"
    bare.mkdir()
    truncated = bare / "truncated.dump"
    with open(dump, "rb") as src, open(truncated, "wb") as dst:
        dst.write(src.read(int(size * 0.6)))
    result = module_runner("backup_restore_drill", dict(drill_args, backup_source="file", dump_file=str(truncated),
                                                        expected_from="source"))
    assert_no_leak(result, drill_env["admin_password"])
    assert result["status"] == "fail", result["records"][0]["summary"]
    by_name = records(result)
    assert by_name["restore"]["status"] == "fail"
    assert "pg_restore" in by_name["restore"]["summary"]
    assert result["drill"]["restore"]["error_lines"], "pg_restore's errors must be in the evidence"
    assert result["drill"]["cleanup"]["scratch_dropped"] is True
    # The same cut in the backup directory, next to the backup's sha256: refused before any restore.
    with open(dump, "rb") as src:
        data = src.read(int(size * 0.6))
    with open(dump, "wb") as dst:
        dst.write(data)
    result = module_runner("backup_restore_drill", dict(drill_args, backup_source="latest", backup_dir=str(backup_dir)))
    assert result["status"] == "fail"
    assert records(result)["dump"]["status"] == "fail" and "sha256" in records(result)["dump"]["summary"]
    assert records(result)["restore"]["status"] == "skipped"
    assert result["drill"]["cleanup"]["scratch_created"] is False


def test_target_equal_to_source_is_refused(module_runner, drill_env, drill_args, source_guard):
    before = list_databases(drill_env["server"])
    for extra in ({}, {"replace": True}):
        result = module_runner("backup_restore_drill", dict(drill_args, scratch_db=drill_env["source_db"], **extra))
        assert result.get("failed") is True
        assert "scratch_db" in result["msg"] and "source" in result["msg"]
        assert_no_leak(result, drill_env["admin_password"])
    for name in ("postgres", "template1"):
        result = module_runner("backup_restore_drill", dict(drill_args, scratch_db=name, replace=True))
        assert result.get("failed") is True and "scratch_db" in result["msg"]
    assert list_databases(drill_env["server"]) == before


def test_existing_scratch_database_needs_replace(module_runner, drill_env, drill_args, source_guard):
    name = drill_env["prefix"] + "_fixed"
    admin = connect(drill_env["server"])
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {0}").format(sql.Identifier(name)))
    admin.close()
    try:
        result = module_runner("backup_restore_drill", dict(drill_args, scratch_db=name))
        assert result.get("failed") is True and "already exists" in result["msg"] and "replace" in result["msg"]
        assert name in list_databases(drill_env["server"])
        result = module_runner("backup_restore_drill", dict(drill_args, scratch_db=name, replace=True))
        assert result["status"] == "pass", result["records"][0]["summary"]
        assert name not in list_databases(drill_env["server"])
    finally:
        drop_database(drill_env["server"], name)


def test_source_role_without_bypassrls_gets_a_clear_failure(module_runner, drill_env, drill_args, source_guard, tmp_path):
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    args = dict(drill_args, login_user=drill_env["reader_role"], login_password=drill_env["reader_password"],
                backup_dir=str(backup_dir), keep_dump=True)
    result = module_runner("backup_restore_drill", args)
    assert_no_leak(result, drill_env["reader_password"], drill_env["admin_password"])
    assert result["status"] == "fail"
    dump = records(result)["dump"]
    assert dump["status"] == "fail"
    assert "BYPASSRLS" in dump["summary"] and "row-level security" in dump["summary"]
    assert drill_env["reader_role"] in dump["summary"]
    assert records(result)["restore"]["status"] == "skipped"
    assert os.listdir(backup_dir) == []


def test_missing_pg_restore_binary(module_runner, drill_env, drill_args, source_guard, tmp_path):
    result = module_runner("backup_restore_drill", dict(drill_args, pg_restore_path=str(tmp_path / "nowhere" / "pg_restore")))
    assert result["status"] == "error"
    restore = records(result)["restore"]
    assert restore["status"] == "error" and "pg_restore not found" in restore["summary"]
    # A bindir holding pg_dump only.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    real_dump = shutil.which("pg_dump", path=drill_args["bindir"]) if drill_args["bindir"] else shutil.which("pg_dump")
    os.symlink(real_dump, bindir / "pg_dump")
    result = module_runner("backup_restore_drill", dict(drill_args, bindir=str(bindir)))
    assert_no_leak(result, drill_env["admin_password"])
    assert result["status"] == "error"
    assert "pg_restore not found" in records(result)["restore"]["summary"] and str(bindir) in records(result)["restore"]["summary"]
    assert result["drill"]["cleanup"]["scratch_created"] is False
    assert result["changed"] is False


def test_restore_without_privileges_reports_lost_grants(module_runner, drill_env, drill_args, source_guard):
    result = module_runner("backup_restore_drill", dict(drill_args, restore_privileges=False))
    assert_no_leak(result, drill_env["admin_password"])
    assert result["status"] == "fail"
    checks = checks_of(result)
    privileges = checks["app_privileges"]
    assert privileges["status"] == "fail"
    lost = dict((item["table"], item["lost"]) for item in privileges["lost_grants"])
    for table in ("public.organizations", "public.bookings", "public.invoices", "public.client_users", "public.leads"):
        assert lost[table] == ["DELETE", "INSERT", "SELECT", "UPDATE"]
    assert lost["public.Order Items"] == ["SELECT"] and lost["reporting.daily_totals"] == ["SELECT"]
    assert privileges["lost_schema_usage"] == ["reporting"]
    assert "public.bookings_id_seq" in privileges["lost_sequence_usage"]
    denied = set((d["table"], d["privilege"]) for d in privileges["probe"]["denied"])
    assert ("public.bookings", "SELECT") in denied and ("public.invoices", "INSERT") in denied
    assert "without privileges" in privileges["summary"]
    # Everything else was restored faithfully.
    for name in ("revision", "tables", "row_counts", "checksums", "rls_flags", "policies", "sequences"):
        assert checks[name]["status"] == "pass", checks[name]
    assert result["drill"]["cleanup"]["scratch_dropped"] is True


def test_keep_on_failure_keeps_the_scratch_database(module_runner, drill_env, drill_args, scratch_databases):
    result = module_runner("backup_restore_drill", dict(drill_args, restore_privileges=False, keep_on_failure=True))
    try:
        assert result["status"] == "fail"
        assert result["drill"]["cleanup"]["kept_on_failure"] is True
        assert scratch_databases() == [result["drill"]["scratch_db"]]
    finally:
        drop_database(drill_env["server"], result["drill"]["scratch_db"])
    assert scratch_databases() == []


def test_differences_are_reported_with_expected_and_actual(module_runner, drill_env, drill_args, scratch_databases, tmp_path):
    """A dump of a copy, then the copy changes: row counts, checksums, a policy, RLS forcing and a grant
    differ; a sequence left behind its table is caught in the restored database."""
    server = drill_env["server"]
    copy = "drill_copy_%s" % drill_env["token"]
    seed(server, copy, drill_env["app_role"])
    try:
        conn = connect(server, copy)
        with conn.cursor() as cur:
            cur.execute("INSERT INTO leads (id, payload) VALUES (100000, '{}')")  # the sequence stays behind
        conn.close()
        backup_dir = tmp_path / "backups"
        backup_dir.mkdir()
        dumped = module_runner("backup_restore_drill", dict(drill_args, login_db=copy, backup_dir=str(backup_dir), keep_dump=True))
        assert dumped["status"] == "fail"
        assert checks_of(dumped)["sequences"]["status"] == "fail"
        behind = checks_of(dumped)["sequences"]["behind"]
        assert behind == [{"sequence": "public.leads_id_seq", "table": "public.leads", "column": "id",
                           "last_value": 300, "max_in_table": 100000}]
        conn = connect(server, copy)
        with conn.cursor() as cur:
            cur.execute("SELECT setval('leads_id_seq', 100000)")
            cur.execute("INSERT INTO bookings (org_id, starts_at) VALUES ('00000000-0000-0000-0000-000000000001', now())")
            cur.execute("UPDATE \"Order Items\" SET \"Weird \"\"Col\"\"\" = 'changed' WHERE id = 7")
            cur.execute("DROP POLICY client_users_org_rls ON client_users")
            cur.execute("ALTER TABLE invoices NO FORCE ROW LEVEL SECURITY")
            cur.execute(sql.SQL("REVOKE DELETE ON leads FROM {0}").format(sql.Identifier(drill_env["app_role"])))
            cur.execute("UPDATE alembic_version SET version_num = 'next_revision'")
        conn.close()
        result = module_runner("backup_restore_drill", dict(drill_args, login_db=copy, backup_source="file",
                                                            dump_file=dumped["drill"]["dump"]["file"], expected_from="source"))
        assert_no_leak(result, drill_env["admin_password"])
        assert result["status"] == "fail"
        checks = checks_of(result)
        assert checks["revision"]["status"] == "fail"
        assert checks["revision"]["expected"]["versions"] == ["next_revision"] and checks["revision"]["actual"]["versions"] == [REVISION]
        assert checks["row_counts"]["mismatches"] == [{"table": "public.bookings", "expected": 2001, "actual": 2000}]
        mismatched = set(item["table"] for item in checks["checksums"]["mismatches"])
        assert mismatched == {"public.bookings", "public.Order Items", "public.alembic_version"}
        assert checks["policies"]["extra"] == ["client_users_org_rls on public.client_users"]
        assert checks["rls_flags"]["mismatches"] == [{"table": "public.invoices", "expected": {"enabled": True, "forced": False},
                                                      "actual": {"enabled": True, "forced": True}}]
        assert checks["app_privileges"]["status"] == "pass"  # the restore has more grants, never fewer
        assert checks["app_privileges"]["gained_grants"] == [{"table": "public.leads", "gained": ["DELETE"]}]
        assert checks["tables"]["status"] == "pass"
        assert scratch_databases() == []
    finally:
        drop_database(server, copy)


def test_check_mode_creates_nothing(module_runner, drill_env, drill_args, source_guard, tmp_path):
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    marker = backup_dir / "LAST_SUCCESS.txt"
    before = list_databases(drill_env["server"])
    result = module_runner("backup_restore_drill", dict(drill_args, backup_dir=str(backup_dir), keep_dump=True,
                                                        marker_file=str(marker)), check_mode=True)
    assert_no_leak(result, drill_env["admin_password"])
    assert result["changed"] is False
    assert result["status"] == "skipped"
    assert all(record["status"] == "skipped" for record in result["records"])
    assert all(record["skip_reason"] == "check_mode" for record in result["records"])
    plan = result["plan"]
    assert plan["dump"]["tables"] == 9 and plan["dump"]["kept_in"] == str(backup_dir)
    assert plan["restore"]["scratch_db"].startswith(drill_env["prefix"]) and plan["restore"]["exists"] is False
    assert plan["writes"]["marker_file"] == str(marker)
    assert list_databases(drill_env["server"]) == before
    assert os.listdir(backup_dir) == []
    # Preflight failures still show in check mode.
    result = module_runner("backup_restore_drill", dict(drill_args, login_user=drill_env["reader_role"],
                                                        login_password=drill_env["reader_password"]), check_mode=True)
    assert result["status"] == "fail" and "BYPASSRLS" in records(result)["dump"]["summary"]


def test_canary_password_in_a_dsn_never_leaks(module_runner, drill_env, drill_args, source_guard):
    server = drill_env["server"]
    dsn = "postgresql+psycopg://%s:%s@%s:%s/%s" % (drill_env["admin_role"], drill_env["admin_password"], server["host"],
                                                   server["port"], drill_env["source_db"])
    args = dict((k, v) for k, v in drill_args.items() if k not in ("login_host", "login_port", "login_user", "login_password", "login_db"))
    args["dsn"] = dsn
    result = module_runner("backup_restore_drill", args)
    assert_no_leak(result, drill_env["admin_password"])
    assert result["status"] == "pass", result["records"][0]["summary"]
    # A wrong password on the restore server: an error record, the password not echoed.
    wrong = "canary-wrong-%s" % drill_env["token"]
    result = module_runner("backup_restore_drill", dict(args, target_host=server["host"], target_user=drill_env["admin_role"],
                                                        target_password=wrong))
    assert_no_leak(result, drill_env["admin_password"], wrong)
    assert result["status"] == "error" and "password authentication failed" in records(result)["restore"]["summary"]


@pytest.mark.parametrize("extra, option", [
    ({"jobs": 0}, "jobs"),
    ({"verify_connections": 99}, "verify_connections"),
    ({"checksum_max_rows": -1}, "checksum_max_rows"),
    ({"rto_seconds": 0}, "rto_seconds"),
    ({"scratch_db": "bad name; drop"}, "scratch_db"),
    ({"scratch_prefix": "x" * 50}, "scratch_prefix"),
    ({"backup_source": "file"}, "dump_file"),
    ({"backup_source": "latest"}, "backup_dir"),
    ({"keep_dump": True}, "backup_dir"),
    ({"marker_file": "/nonexistent-dir/LAST_SUCCESS.txt"}, "marker_file"),
    ({"ignore_restore_errors": ["("]}, "ignore_restore_errors"),
    ({"app_privileges": ["SELECT", "FLY"]}, "app_privileges"),
    ({"login_db": None}, "login_db"),
    ({"dump_sha256": "abc"}, "dump_sha256"),
    ({"target_dsn": "mysql://u:canary-target-dsn@h/d"}, "target_dsn"),
    ({"compress": 12}, "compress"),
])
def test_bad_input_fails_naming_the_option(module_runner, drill_env, drill_args, extra, option):
    result = module_runner("backup_restore_drill", dict(drill_args, **extra))
    assert result.get("failed") is True
    assert option in result["msg"]
    assert "Traceback" not in result.raw
    assert_no_leak(result, drill_env["admin_password"], "canary-target-dsn")


def test_client_older_than_the_server_is_a_clear_error(module_runner, drill_env, drill_args, source_guard, tmp_path):
    bindir = tmp_path / "pg14"
    bindir.mkdir()
    for name in ("pg_dump", "pg_restore"):
        path = bindir / name
        path.write_text("#!/bin/sh\necho '%s (PostgreSQL) 14.11'\nexit 0\n" % name)
        path.chmod(0o755)
    result = module_runner("backup_restore_drill", dict(drill_args, bindir=str(bindir)))
    assert result["status"] == "error"
    dump = records(result)["dump"]
    assert dump["status"] == "error"
    assert "pg_dump is older than the source server (PostgreSQL 15)" in dump["summary"] and "14.11" in dump["summary"]
    assert result["drill"]["cleanup"]["scratch_created"] is False


def test_interrupted_drill_still_drops_its_scratch_database(drill_env, drill_args, source_guard, scratch_databases, tmp_path):
    """SIGTERM while pg_restore runs (an Ansible timeout, a cancelled AWX job): the module stops the
    restore, drops the scratch database and still reports (an error record)."""
    import signal
    import subprocess
    import sys
    import time

    from modrun import COLLECTIONS, ROOT

    real_bindir = drill_args["bindir"] or os.path.dirname(shutil.which("pg_restore"))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(os.path.join(real_bindir, "pg_dump"), bindir / "pg_dump")
    slow = bindir / "pg_restore"
    slow.write_text('#!/bin/sh\ncase "$*" in *--dbname=*) sleep 20;; esac\nexec %s "$@"\n' % os.path.join(real_bindir, "pg_restore"))
    slow.chmod(0o755)
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(drill_args, bindir=str(bindir), _ansible_check_mode=False)}))
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    proc = subprocess.Popen([sys.executable, str(ROOT / "plugins" / "modules" / "backup_restore_drill.py"), str(args_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        while not scratch_databases() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert scratch_databases(), "the scratch database never appeared"
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    result = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
    assert drill_env["admin_password"] not in out + err
    assert result["status"] == "error"
    restore = records(result)["restore"]
    assert restore["status"] == "error" and "interrupted" in restore["summary"]
    assert result["drill"]["cleanup"]["scratch_dropped"] is True
    assert scratch_databases() == []

"""Benchmark (not a test, not CI): backup_restore_drill against the raw pg_dump + pg_restore it wraps.

Builds a database of at least --size-gb (default 1.05 GB, measured by pg_database_size) shaped like
the service's tenant data: a large table with forced RLS, its policy, an index and a bigserial key,
a few smaller tables, alembic_version and grants to an application role (fast: generate_series
inserts). Then, in one run, times

  raw:   pg_dump -Fc  +  CREATE DATABASE  +  pg_restore -j2  +  DROP DATABASE
  drill: the backup_restore_drill module, run as Ansible runs it (dump in a shared snapshot,
         restore -j2, every verification, scratch database dropped)

and prints both and their ratio. Target: the drill takes at most 1.25x the raw dump + restore.

    .venv/bin/python bench/bench_backup_drill.py [--size-gb 1.05] [--jobs 2] [--rounds 1] [--target 1.25] [--keep-db]

Uses the cluster named by PGHARNESS_STATE if set, else starts (and removes) one of its own.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2
from psycopg2 import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "harness"))

from pgcluster import running_or_new  # noqa: E402  pylint: disable=wrong-import-position
from modrun import run_module  # noqa: E402  pylint: disable=wrong-import-position

POLICY = "org_id = NULLIF(current_setting('app.current_org_id', true), '')::uuid"
ROWS_PER_BATCH = 500000


def connect(pg, dbname=None):
    conn = psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["user"], password=pg["password"], dbname=dbname or pg["dbname"])
    conn.autocommit = True
    return conn


def client(pg, name):
    path = os.path.join(pg.get("bindir") or "", name)
    return path if os.access(path, os.X_OK) else shutil.which(name)


def build(pg, dbname, app_role, size_bytes):
    admin = connect(pg)
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {0} TEMPLATE template0").format(sql.Identifier(dbname)))
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (app_role,))
        if not cur.fetchone():
            cur.execute(sql.SQL("CREATE ROLE {0} LOGIN NOSUPERUSER NOBYPASSRLS").format(sql.Identifier(app_role)))
    admin.close()
    conn = connect(pg, dbname)
    with conn.cursor() as cur:
        cur.execute("""
            CREATE TABLE organizations (org_id uuid PRIMARY KEY, name text NOT NULL);
            INSERT INTO organizations SELECT ('00000000-0000-0000-0000-' || lpad(g::text, 12, '0'))::uuid, 'org ' || g
              FROM generate_series(1, 50) g;
            CREATE TABLE bookings (
                id bigserial PRIMARY KEY,
                org_id uuid NOT NULL,
                starts_at timestamptz NOT NULL,
                amount numeric(10, 2),
                status text NOT NULL,
                notes text
            );
            CREATE TABLE leads (id serial PRIMARY KEY, org_id uuid, payload jsonb);
            INSERT INTO leads (org_id, payload) SELECT NULL, jsonb_build_object('n', g, 'source', 'web') FROM generate_series(1, 20000) g;
            CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
            INSERT INTO alembic_version VALUES ('merge_20260224_01');
        """)
        cur.execute("ALTER TABLE bookings ENABLE ROW LEVEL SECURITY; ALTER TABLE bookings FORCE ROW LEVEL SECURITY")
        cur.execute("CREATE POLICY bookings_org_isolation ON bookings USING (" + POLICY + ") WITH CHECK (" + POLICY + ")")
        cur.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON organizations, bookings, leads TO {0}; "
                            "GRANT SELECT ON alembic_version TO {0}; "
                            "GRANT USAGE ON SEQUENCE bookings_id_seq, leads_id_seq TO {0}").format(sql.Identifier(app_role)))
        start = 0
        while True:
            cur.execute("SELECT pg_database_size(current_database())")
            current = cur.fetchone()[0]
            # The index built at the end adds about 20% on top of the heap.
            if current * 1.2 >= size_bytes:
                break
            cur.execute("INSERT INTO bookings (org_id, starts_at, amount, status, notes) SELECT "
                        "('00000000-0000-0000-0000-' || lpad((g %% 50 + 1)::text, 12, '0'))::uuid, "
                        "timestamptz '2024-01-01 00:00+00' + g * interval '1 minute', (g %% 10000) / 7.0, "
                        "(ARRAY['new', 'confirmed', 'done', 'cancelled'])[g %% 4 + 1], "
                        "'booking ' || g || ' ' || md5(g::text) || ' ' || md5((g * 7)::text) "
                        "FROM generate_series(%s, %s) g", (start + 1, start + ROWS_PER_BATCH))
            start += ROWS_PER_BATCH
        cur.execute("CREATE INDEX bookings_org_starts_idx ON bookings (org_id, starts_at)")
        cur.execute("VACUUM ANALYZE")
        cur.execute("SELECT pg_database_size(current_database()), (SELECT count(*) FROM bookings)")
        size, rows = cur.fetchone()
    conn.close()
    return size, rows


def drop(pg, dbname):
    admin = connect(pg)
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {0} WITH (FORCE)").format(sql.Identifier(dbname)))
    admin.close()


def raw_dump_restore(pg, dbname, jobs, workdir):
    env = dict(os.environ, PGHOST=pg["host"], PGPORT=str(pg["port"]), PGUSER=pg["user"], PGPASSWORD=pg["password"])
    dump = os.path.join(workdir, "raw.dump")
    scratch = "bench_raw_%s" % secrets.token_hex(3)
    timings = {}
    started = time.monotonic()
    subprocess.run([client(pg, "pg_dump"), "--format=custom", "--no-password", "--file=%s" % dump, "--dbname=%s" % dbname],
                   check=True, env=env)
    timings["dump_s"] = time.monotonic() - started
    mark = time.monotonic()
    admin = connect(pg)
    with admin.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {0} TEMPLATE template0").format(sql.Identifier(scratch)))
    admin.close()
    subprocess.run([client(pg, "pg_restore"), "--no-password", "--jobs=%d" % jobs, "--dbname=%s" % scratch, dump], check=True, env=env)
    timings["restore_s"] = time.monotonic() - mark
    drop(pg, scratch)
    timings["total_s"] = time.monotonic() - started
    timings["dump_bytes"] = os.path.getsize(dump)
    os.unlink(dump)
    return timings


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gb", type=float, default=1.05, help="database size to build, in 10^9 bytes")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--target", type=float, default=1.25, help="largest acceptable drill/raw ratio")
    parser.add_argument("--keep-db", action="store_true", help="keep the built database (for repeated runs)")
    parser.add_argument("--dbname", help="reuse an existing database instead of building one")
    parser.add_argument("--rounds", type=int, default=1, help="raw/drill pairs (order alternates; medians compared)")
    args = parser.parse_args(argv)

    cluster = contextlib.ExitStack()  # the cluster named by PGHARNESS_STATE, or one of our own until the end
    pg = cluster.enter_context(running_or_new())
    dbname = args.dbname or "bench_drill_%s" % secrets.token_hex(3)
    app_role = "bench_drill_app"
    workdir = tempfile.mkdtemp(prefix="bench-drill-")
    try:
        if not args.dbname:
            started = time.monotonic()
            size, rows = build(pg, dbname, app_role, int(args.size_gb * 1e9))
            print("setup: %s, %.2f GB (%d booking rows) in %.1f s" % (dbname, size / 1e9, rows, time.monotonic() - started))
        module_args = {"login_host": pg["host"], "login_port": pg["port"], "login_user": pg["user"], "login_password": pg["password"],
                       "login_db": dbname, "app_role": app_role, "jobs": args.jobs, "backup_dir": workdir}
        raws, drills = [], []
        for round_no in range(1, args.rounds + 1):
            # Alternate the order so neither side always runs on a warmer cache.
            order = ("raw", "drill") if round_no % 2 else ("drill", "raw")
            for side in order:
                if side == "raw":
                    raw = raw_dump_restore(pg, dbname, args.jobs, workdir)
                    raws.append(raw["total_s"])
                    print("[%d] raw:   pg_dump -Fc %.1f s (%.0f MB) + pg_restore -j%d %.1f s = %.1f s"
                          % (round_no, raw["dump_s"], raw["dump_bytes"] / 1e6, args.jobs, raw["restore_s"], raw["total_s"]))
                    continue
                started = time.monotonic()
                result = run_module("backup_restore_drill", module_args, timeout=3600)
                wall = time.monotonic() - started
                if result.get("failed") or result["status"] != "pass":
                    print(json.dumps(result.get("records", result), indent=1)[:4000])
                    return 1
                drills.append(wall)
                timings = result["drill"]["timings"]
                dump = result["drill"]["dump"]
                checks = ", ".join("%s=%s" % (c["name"], c["status"]) for c in result["drill"]["checks"])
                print("[%d] drill: dump %.1f s (pg_dump %.1f s, sha256 %.1f s, wait for source facts %.1f s) + restore %.1f s "
                      "+ verify %.1f s = %.1f s in the module, %.1f s wall (%s)"
                      % (round_no, timings["dump_s"], dump["pg_dump_s"], dump["sha256_s"], dump["expected_facts_wait_s"],
                         timings["restore_s"], timings["verify_s"], timings["total_s"], wall, checks))
            sys.stdout.flush()
        raw_s, drill_s = statistics.median(raws), statistics.median(drills)
        ratio = drill_s / raw_s
        verdict = "OK" if ratio <= args.target else "OVER TARGET"
        print("ratio: drill %.1f s / raw %.1f s = %.2fx (median of %d round(s); target <= %.2fx): %s"
              % (drill_s, raw_s, ratio, args.rounds, args.target, verdict))
        return 0 if ratio <= args.target else 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep_db and not args.dbname:
            drop(pg, dbname)
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())

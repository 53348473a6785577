"""Benchmark (not a test): rls_policy_check over 50 tables with forced RLS, run as Ansible runs a module.

Creates a throw-away database with N tables shaped like the service's tenant tables (org_id, a NOT
NULL text and integer column, the observed ``<table>_org_isolation`` policy), then runs the module
with the full behavioural proof (write probes on, connected as the owner and switching to the app
role) and prints the wall time of the whole module process, the time inside the module and the number
of SQL statements. Target: 1 s or less for 50 tables.

    .venv/bin/python bench/bench_rls_policy_check.py [--tables 50] [--runs 3]

Uses the cluster named by PGHARNESS_STATE if set, else starts (and removes) one of its own.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "harness"))
sys.path.insert(0, str(ROOT / "tests" / "integration" / "db"))

from pgcluster import running_or_new  # noqa: E402  pylint: disable=wrong-import-position
from modrun import run_module  # noqa: E402  pylint: disable=wrong-import-position
import dbchecks_schema  # noqa: E402  pylint: disable=wrong-import-position


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--target", type=float, default=1.0, help="seconds")
    args = parser.parse_args(argv)

    cluster = contextlib.ExitStack()  # the cluster named by PGHARNESS_STATE, or one of our own until the end
    pg = cluster.enter_context(running_or_new())
    tenant = dbchecks_schema.create_database(pg, "bench_rls_%s" % secrets.token_hex(3))
    try:
        started = time.monotonic()
        tables = dbchecks_schema.build_many_tables(tenant, args.tables)
        print("setup: %d tables with forced RLS in %.2f s" % (len(tables), time.monotonic() - started))
        module_args = tenant.module_args("owner", app_role=tenant.app, tables=tables)
        walls, inside, statements = [], [], None
        for run in range(args.runs):
            started = time.monotonic()
            result = run_module("rls_policy_check", module_args)
            wall = time.monotonic() - started
            if result.get("failed") or result["status"] not in ("pass", "fail"):
                print(json.dumps(result, indent=1)[:3000])
                return 1
            records = dict((record["criterion"], record) for record in result["records"])
            isolation = records["rls.isolation"]
            if isolation["status"] != "pass":
                print("isolation did not pass: %s" % isolation["summary"])
                return 1
            statements = isolation["evidence"].get("statements")
            in_module = sum(record["duration_ms"] for record in result["records"]) / 1000.0
            walls.append(wall)
            inside.append(in_module)
            print("run %d: wall %.3f s (module process), checks %.3f s inside the module, %s statements, status %s"
                  % (run + 1, wall, in_module, statements, result["status"]))
        best, median = min(walls), statistics.median(walls)
        print("rls_policy_check over %d tables: wall median %.3f s, best %.3f s; checks median %.3f s; target %.1f s: %s"
              % (len(tables), median, best, statistics.median(inside), args.target, "MET" if median <= args.target else "MISSED"))
        return 0 if median <= args.target else 2
    finally:
        dbchecks_schema.drop_database(tenant)
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())

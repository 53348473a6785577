"""Benchmark (not a test): `ansible-playbook verify.yml -i local` against the raw runbook (bench/raw_runbook.sh,
the runbook's curl/psql/alembic checks corrected for the real service) on the same reference stack, in one run.

Each round runs, in a rotating order: verify.yml, the raw runbook as written (`alembic heads`/`alembic current`),
the raw runbook with the version table read by psql instead of alembic (the fastest hand-typed equivalent), a
one-task playbook (the Ansible floor on this machine at that moment) and, with --compare-ref, verify.yml of an
older revision of the collection (before/after in the same run, same load). Medians count.

The stack has the real service's rate limit (30 requests a minute per client), and every measured run starts on a
free window (the service restarted and the ledger emptied between runs, untimed): the raw runbook's curls and
verify.yml both come from 127.0.0.1, so back to back they would share one window.

Targets: verify.yml at most 2.5 s, and at most 1.5x the raw runbook as the runbook writes it (alembic CLI), while
checking strictly more (the criteria the raw runbook checks are a proper subset of verify.yml's, and verify.yml makes
more assertions); the ratio to the psql-only variant is reported too.

    .venv/bin/python bench/bench_verify_vs_runbook.py [--rounds 7] [--compare-ref cc02c5b] [--timer] [--json FILE]

Uses the cluster named by PGHARNESS_STATE if set, else starts (and removes) one of its own.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import (ANSIBLE_PLAYBOOK, ROOT, CollectionTree, finish, loadavg, pg_cluster, run_playbook, stack_vars,
                          start_stack, summary, task_times, write_vars)

TARGET_SECONDS = 2.5
TARGET_RATIO = 1.5
FLOOR_PLAY = "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"


def raw_env(stack, alembic):
    facts = stack.facts()
    env = dict(os.environ)
    env.update({
        "API_BASE": facts["base_url"],
        "ADMIN_BASIC_USERNAME": facts["credentials"]["admin"][0], "ADMIN_BASIC_PASSWORD": facts["credentials"]["admin"][1],
        "DISPATCHER_BASIC_USERNAME": facts["credentials"]["dispatcher"][0],
        "DISPATCHER_BASIC_PASSWORD": facts["credentials"]["dispatcher"][1],
        "DATABASE_URL": facts["db"]["app_database_url"], "ORG_ID": facts["default_org_id"],
        "RAW_ALEMBIC": alembic, "ALEMBIC_CONFIG": facts["alembic_ini"], "EXPECTED_HEAD": facts["expected_head"],
        # What `alembic current` needs in the reference service's environment (its env.py reads this URL).
        "REFSERVICE_MIGRATION_URL": facts["db"]["owner_dsn"],
        "PATH": "%s%s%s" % (Path(sys.executable).parent, os.pathsep, os.environ.get("PATH", "")),
    })
    return env


def run_raw(stack, alembic):
    started = time.monotonic()
    proc = subprocess.run(["bash", str(ROOT / "bench" / "raw_runbook.sh")], env=raw_env(stack, alembic),
                          capture_output=True, text=True, timeout=300, check=False)
    seconds = time.monotonic() - started
    checks = [line.split(" ", 3) for line in proc.stdout.splitlines() if line.startswith("CHECK ")]
    return seconds, proc.returncode, checks, proc.stdout


def verify_coverage(report):
    """Criteria with a real outcome, records and assertions of a verify.yml report."""
    criteria = {c["criterion"] for c in report["criteria"] if c["outcome"] in ("pass", "fail", "inconclusive", "advisory")}
    records = [r for c in report["criteria"] for r in c["records"]]
    assertions = sum(int((r.get("evidence") or {}).get("checks") or 1) for r in records if r["status"] != "skipped")
    return criteria, len(records), assertions


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--compare-ref", help="also time verify.yml of this git revision (before/after)")
    parser.add_argument("--timer", action="store_true", help="one more verify.yml run with the task_timer callback")
    parser.add_argument("--json", help="write the figures to this file")
    return parser.parse_args()


def report_figures(args, results, report, raw_last, load, timer_rows, before):
    """The figures of the rounds against the targets: printed, and written to --json by finish()."""
    figures = {name: summary(values) for name, values in results.items()}
    criteria, records, assertions = verify_coverage(report)
    raw_criteria = {check[1] for check in raw_last["cli"]}
    verify_s, raw_s = figures["verify"]["median"], figures["raw"]["median"]
    ratio = verify_s / raw_s
    out = {
        "rounds": args.rounds, "load_average_1min": [round(x, 2) for x in load if x is not None],
        "seconds": figures, "ratio_verify_to_raw": round(ratio, 2),
        "ratio_verify_to_raw_sql": round(verify_s / figures["raw_sql"]["median"], 2),
        "raw_checks": len(raw_last["cli"]), "raw_criteria": sorted(raw_criteria),
        "verify_criteria": len(criteria), "verify_records": records, "verify_assertions": assertions,
        "criteria_only_in_verify": sorted(criteria - raw_criteria),
        "criteria_only_in_raw": sorted(raw_criteria - criteria),
        "targets": {"verify_seconds": TARGET_SECONDS, "ratio": TARGET_RATIO},
        "met": {"verify_seconds": verify_s <= TARGET_SECONDS, "ratio": ratio <= TARGET_RATIO,
                "strictly_more": raw_criteria < criteria and assertions > len(raw_last["cli"])},
        "task_times": timer_rows,
    }
    if before:
        out["compare_ref"] = args.compare_ref
        out["speedup_vs_ref"] = round(figures["verify_before"]["median"] / verify_s, 2)

    print("verify.yml vs the raw runbook, %d rounds (1-min load average %s)" % (args.rounds, out["load_average_1min"]))
    print("%-34s %8s %8s %8s" % ("", "median", "min", "max"))
    labels = {"verify": "verify.yml (working tree)", "raw": "raw runbook (alembic CLI)", "raw_sql": "raw runbook (psql only)",
              "floor": "one-task playbook (Ansible floor)", "verify_before": "verify.yml at %s" % args.compare_ref}
    for name in results:
        print("%-34s %7.2fs %7.2fs %7.2fs" % (labels[name], figures[name]["median"], figures[name]["min"], figures[name]["max"]))
    print("ratio verify / raw = %.2f (target <= %.1f), verify / raw psql-only = %.2f" % (
        ratio, TARGET_RATIO, out["ratio_verify_to_raw_sql"]))
    if before:
        print("verify.yml at %s / working tree = %.2fx" % (args.compare_ref, out["speedup_vs_ref"]))
    print("raw runbook: %d checks over %d criteria; verify.yml: %d criteria, %d records, %d assertions" % (
        len(raw_last["cli"]), len(raw_criteria), len(criteria), records, assertions))
    print("criteria only verify.yml checks: %s" % ", ".join(out["criteria_only_in_verify"]))
    if out["criteria_only_in_raw"]:
        print("criteria only the raw runbook checks: %s" % ", ".join(out["criteria_only_in_raw"]))
    for seconds, name in timer_rows:
        print("  %6.3f s  %s" % (seconds, name))
    print("targets: verify <= %.1f s: %s; ratio <= %.1f: %s; strictly more: %s" % (
        TARGET_SECONDS, "MET" if out["met"]["verify_seconds"] else "MISSED", TARGET_RATIO,
        "MET" if out["met"]["ratio"] else "MISSED", "MET" if out["met"]["strictly_more"] else "MISSED"))
    return finish(out, args.json)


def main():
    args = arguments()

    workdir = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    # A ledger of the benchmark's own (the runs' requests are not the user's).
    os.environ["CWS_RATE_LEDGER_DIR"] = str(workdir / "rate-ledger")
    current = CollectionTree(workdir)
    before = CollectionTree(workdir, args.compare_ref) if args.compare_ref else None
    floor_play = workdir / "floor.yml"
    floor_play.write_text(FLOOR_PLAY, encoding="utf-8")
    results = {"verify": [], "raw": [], "raw_sql": [], "floor": []}
    if before:
        results["verify_before"] = []
    load = []
    with pg_cluster() as pg_facts:
        stack = start_stack(pg_facts, "bench_vr_%d" % os.getpid())
        try:
            vars_file = workdir / "local-stack.json"
            write_vars(vars_file, stack_vars(stack))

            def verify(tree):
                seconds, rc, report, output = run_playbook(tree, "verify.yml", vars_file, workdir)
                if rc != 0 or not report or report["verdict"] != "GO":
                    raise SystemExit("verify.yml (%s) was not GO (rc %s):\n%s" % (tree.label, rc, output[-3000:]))
                return seconds, report

            def floor():
                started = time.monotonic()
                proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", str(floor_play),
                                       "-e", "ansible_python_interpreter=%s" % sys.executable],
                                      capture_output=True, text=True, timeout=300, check=False)
                if proc.returncode != 0:
                    raise SystemExit("the one-task playbook failed:\n" + proc.stdout[-2000:])
                return time.monotonic() - started

            variants = [("verify", lambda: verify(current)[0]), ("raw", lambda: raw_seconds("cli")),
                        ("raw_sql", lambda: raw_seconds("sql")), ("floor", floor)]
            if before:
                variants.append(("verify_before", lambda: verify(before)[0]))

            raw_last = {}

            def raw_seconds(alembic):
                seconds, rc, checks, output = run_raw(stack, alembic)
                if rc != 0:
                    raise SystemExit("the raw runbook (%s) found failures on the healthy stack:\n%s" % (alembic, output))
                raw_last[alembic] = checks
                return seconds

            # Warm-up (page cache, byte-compiled ansible): one of each, not counted.
            stack.clear_faults()
            dummy, report = verify(current)
            for dummy_name, func in variants[1:]:
                stack.fresh_rate_window(force=True)
                func()
            for round_number in range(args.rounds):
                stack.clear_faults()  # fresh heartbeats, as the cron job would keep them
                load.append(loadavg())
                shift = round_number % len(variants)
                for name, func in variants[shift:] + variants[:shift]:
                    stack.fresh_rate_window(force=True)  # a free window for every measured run (untimed)
                    results[name].append(func())
            load.append(loadavg())
            stack.fresh_rate_window(force=True)
            dummy, report = verify(current)
            timer_rows = []
            if args.timer:
                stack.fresh_rate_window(force=True)
                dummy, rc, dummy2, output = run_playbook(
                    current, "verify.yml", vars_file, workdir,
                    env={"ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "bench" / "callback_plugins"),
                         "ANSIBLE_CALLBACKS_ENABLED": "task_timer"})
                timer_rows = task_times(output)
        finally:
            stack.stop()

    return report_figures(args, results, report, raw_last, load, timer_rows, before)


if __name__ == "__main__":
    sys.exit(main())

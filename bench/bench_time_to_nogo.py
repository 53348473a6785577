"""Benchmark (not a test): how long verify.yml takes to say NO-GO when the API is down and when it is hung.

On a reference stack, each round times verify.yml (with the task_timer callback, so the HTTP check task's own time is
reported next to the playbook's) for each fault:

  refused:  the service stopped (``service_down``: connection refused at once)
  hung:     the service stopped with SIGSTOP (``service_hung``: connections accepted, never answered)

each with a small probe deadline (``-e verify_http_deadline=D``, default 3 s; the admin deadline follows it) and with
the role's defaults (liveness first and alone: 5 s timeout, 1 retry; verify_http_deadline 90), plus the healthy stack
(the run's fixed cost). Every faulty run must end NO-GO with health.liveness failing and no other request sent. The
healthy run starts on an empty rate-limit window (service restarted, ledger dropped, untimed), so no run waits for
the window of the one before.

Targets: the HTTP check (probes and admin matrix) within the probe deadline + 2 s; with the defaults, within the
liveness probe's bound (2 x 5 s + 0.5 s of backoff) + 2 s. ``--compare-ref REF`` also times the faulty runs of an
older revision (any NO-GO verdict accepted there), for the faults in ``--compare-faults`` (default: refused only; a
hung service with an older revision's default deadlines takes minutes per run, 4 on the real service).

    .venv/bin/python bench/bench_time_to_nogo.py [--deadline 3] [--rounds 3] [--compare-ref cc02c5b]
                                                 [--compare-faults refused,hung] [--json FILE]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from bench_common import (ROOT, CollectionTree, finish, loadavg, pg_cluster, run_playbook, stack_vars, start_stack,
                          summary, task_times, write_vars)

MARGIN = 2.0
LIVENESS_BOUND = 2 * 5.0 + 0.5  # (verify_liveness_retries + 1) x verify_liveness_timeout + the backoff
FAULTS = {"refused": "service_down", "hung": "service_hung"}
TIMER_ENV = {"ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "bench" / "callback_plugins"), "ANSIBLE_CALLBACKS_ENABLED": "task_timer"}


def http_task_seconds(output):
    """Seconds of the HTTP check tasks (readiness_probe and, in older revisions, basic_auth_endpoint)."""
    return sum(seconds for seconds, name in task_times(output)
               if "Probe health" in name or "authorization matrix" in name)


def liveness_failed_alone(report):
    """NO-GO, health.liveness failing, and every other HTTP record not sent."""
    if not report or report["verdict"] != "NO-GO" or "health.liveness" not in report["failing"]:
        return False
    http = [record for criterion in report["criteria"] for record in criterion["records"]
            if "url" in record.get("evidence", {}) and criterion["criterion"] != "health.liveness"]
    return bool(http) and all(record["evidence"].get("sent") is False for record in http)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadline", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare-ref", help="also time the faulty runs of this git revision")
    parser.add_argument("--compare-faults", default="refused",
                        help="the faults (of %s) the --compare-ref revision is timed on" % ", ".join(FAULTS))
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    compared = [name.strip() for name in args.compare_faults.split(",") if name.strip()]
    if set(compared) - set(FAULTS):
        parser.error("--compare-faults: %s not among %s" % (", ".join(sorted(set(compared) - set(FAULTS))), ", ".join(FAULTS)))

    workdir = Path(tempfile.mkdtemp(prefix="bench-nogo-"))
    ledger = workdir / "rate-ledger"
    ledger.mkdir()
    os.environ["CWS_RATE_LEDGER_DIR"] = str(ledger)
    trees = {"": CollectionTree(workdir)}
    if args.compare_ref:
        trees["_before"] = CollectionTree(workdir, args.compare_ref)
    small = ["-e", "verify_http_deadline=%s" % args.deadline, "-e", "verify_admin_deadline=%s" % args.deadline]
    walls, tasks, load = {}, {}, []
    with pg_cluster() as pg_facts:
        stack = start_stack(pg_facts, "bench_ng_%d" % os.getpid())
        try:
            vars_file = workdir / "local-stack.json"
            write_vars(vars_file, stack_vars(stack))

            def timed(name, tree, extra, faulty, current):
                seconds, rc, report, output = run_playbook(tree, "verify.yml", vars_file, workdir, extra=extra, env=TIMER_ENV)
                if not faulty:
                    ok = rc == 0 and report and report["verdict"] == "GO"
                elif current:
                    ok = rc != 0 and liveness_failed_alone(report)
                else:
                    ok = rc != 0 and report and report["verdict"] in ("NO-GO", "NO-GO-INCONCLUSIVE")
                if not ok:
                    raise SystemExit("%s: unexpected verdict (rc %s):\n%s" % (name, rc, output[-3000:]))
                walls.setdefault(name, []).append(seconds)
                tasks.setdefault(name, []).append(http_task_seconds(output))

            for round_number in range(args.rounds + 1):  # round 0 warms up and is dropped
                stack.clear_faults()
                stack.fresh_rate_window(str(ledger), force=True)
                timed("healthy", trees[""], [], faulty=False, current=True)
                load.append(loadavg())
                for label, fault in FAULTS.items():
                    stack.clear_faults()
                    stack.set_fault(fault)
                    for suffix, tree in trees.items():
                        if suffix and label not in compared:
                            continue
                        timed("%s_deadline%s" % (label, suffix), tree, small, faulty=True, current=not suffix)
                        timed("%s_defaults%s" % (label, suffix), tree, [], faulty=True, current=not suffix)
                if round_number == 0:
                    walls, tasks = {}, {}
            stack.clear_faults()
        finally:
            stack.stop()

    figures = {name: {"playbook": summary(values), "http_tasks": summary(tasks[name])} for name, values in walls.items()}
    limits = {"deadline": args.deadline + MARGIN, "defaults": LIVENESS_BOUND + MARGIN}
    met = {}
    for label in FAULTS:
        for kind, limit in limits.items():
            met["%s_%s_http_task" % (label, kind)] = figures["%s_%s" % (label, kind)]["http_tasks"]["median"] <= limit
    out = {"deadline": args.deadline, "target_seconds": limits, "rounds": args.rounds,
           "load_average_1min": [round(x, 2) for x in load if x is not None], "seconds": figures, "met": met}
    print("time to NO-GO, %d rounds, 1-min load %s" % (args.rounds, out["load_average_1min"]))
    print("%-46s %10s %16s %8s" % ("", "playbook", "HTTP check task", "target"))
    for name, figure in sorted(figures.items()):
        base = name.replace("_before", "")
        label, _sep, kind = base.partition("_")
        if name == "healthy":
            text, target = "healthy stack (fixed cost)", ""
        else:
            text = "%s, %s" % (label, "probe deadline %gs" % args.deadline if kind == "deadline" else "default deadlines")
            target = "" if name.endswith("_before") else "<= %.1fs" % limits[kind]
        if name.endswith("_before"):
            text += " at %s" % args.compare_ref
        print("%-46s %9.2fs %15.2fs %8s" % (text, figure["playbook"]["median"], figure["http_tasks"]["median"], target))
    print("targets (HTTP check task): %s" % ", ".join("%s %s" % (key, "MET" if value else "MISSED")
                                                      for key, value in sorted(met.items())))
    return finish(out, args.json)


if __name__ == "__main__":
    sys.exit(main())

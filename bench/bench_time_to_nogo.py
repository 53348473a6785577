"""Benchmark (not a test): how long verify.yml takes to say NO-GO when the API is down (connection refused).

On a reference stack with its service stopped (the ``service_down`` fault), each round times:

  deadline:  verify.yml -e verify_http_deadline=D -e verify_admin_deadline=D   (a small probe deadline, default 3 s)
  defaults:  verify.yml with the role's default deadlines (60 s for the probes, 240 s for the admin matrix)
  healthy:   verify.yml on the same stack with the service up (the run's fixed cost, for comparison)

with the task_timer callback, so the HTTP check task's own time is reported next to the playbook's. Every faulty
run must end NO-GO-INCONCLUSIVE with health.liveness inconclusive. ``--compare-ref REF`` also times the faulty runs
of an older revision of the collection (before/after in one run).

Target: NO-GO within the probe deadline + 1.5 s.

    .venv/bin/python bench/bench_time_to_nogo.py [--deadline 3] [--rounds 3] [--compare-ref cc02c5b] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from bench_common import (ROOT, CollectionTree, loadavg, pg_cluster, run_playbook, stack_vars, start_stack, summary,
                          task_times, write_vars)

MARGIN = 1.5
TIMER_ENV = {"ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "bench" / "callback_plugins"), "ANSIBLE_CALLBACKS_ENABLED": "task_timer"}


def http_task_seconds(output):
    """Seconds of the HTTP check tasks (readiness_probe and, in older revisions, basic_auth_endpoint)."""
    return sum(seconds for seconds, name in task_times(output)
               if "Probe health" in name or "authorization matrix" in name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadline", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare-ref", help="also time the faulty runs of this git revision")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-nogo-"))
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

            def timed(name, tree, extra, down):
                seconds, rc, report, output = run_playbook(tree, "verify.yml", vars_file, workdir, extra=extra, env=TIMER_ENV)
                if down:
                    ok = (rc != 0 and report and report["verdict"] == "NO-GO-INCONCLUSIVE"
                          and "health.liveness" in report["inconclusive"])
                else:
                    ok = rc == 0 and report and report["verdict"] == "GO"
                if not ok:
                    raise SystemExit("%s: unexpected verdict (rc %s):\n%s" % (name, rc, output[-3000:]))
                walls.setdefault(name, []).append(seconds)
                tasks.setdefault(name, []).append(http_task_seconds(output))

            for round_number in range(args.rounds + 1):  # round 0 warms up and is dropped
                stack.clear_faults()
                timed("healthy", trees[""], [], down=False)
                stack.set_fault("service_down")
                load.append(loadavg())
                for suffix, tree in trees.items():
                    timed("deadline" + suffix, tree, small, down=True)
                    timed("defaults" + suffix, tree, [], down=True)
                if round_number == 0:
                    walls, tasks = {}, {}
            stack.clear_faults()
        finally:
            stack.stop()

    figures = {name: {"playbook": summary(values), "http_tasks": summary(tasks[name])} for name, values in walls.items()}
    limit = args.deadline + MARGIN
    out = {"deadline": args.deadline, "target_seconds": limit, "rounds": args.rounds,
           "load_average_1min": [round(x, 2) for x in load if x is not None], "seconds": figures,
           "met_playbook": figures["deadline"]["playbook"]["median"] <= limit,
           "met_http_task": figures["deadline"]["http_tasks"]["median"] <= limit}
    print("time to NO-GO with the API down (connection refused), %d rounds, 1-min load %s" % (args.rounds, out["load_average_1min"]))
    print("%-34s %10s %16s" % ("", "playbook", "HTTP check task"))
    labels = {"deadline": "probe deadline %gs" % args.deadline, "defaults": "default deadlines (60 s / 240 s)",
              "healthy": "healthy stack (fixed cost)"}
    for name, figure in figures.items():
        label = labels.get(name.replace("_before", ""), name) + (" at %s" % args.compare_ref if name.endswith("_before") else "")
        print("%-34s %9.2fs %15.2fs" % (label, figure["playbook"]["median"], figure["http_tasks"]["median"]))
    print("target: NO-GO within %.1f s (deadline + %.1f): playbook %s, HTTP check task %s" % (
        limit, MARGIN, "MET" if out["met_playbook"] else "MISSED", "MET" if out["met_http_task"] else "MISSED"))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(out, handle, indent=1, sort_keys=True)
    return 0 if out["met_playbook"] else 1


if __name__ == "__main__":
    sys.exit(main())

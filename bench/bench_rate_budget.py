"""Benchmark (not a test): verify.yml under the service's real rate limit (30 requests a minute per client).

1. Two verifies back to back, as an operator re-running the gate: both must be decided (no NO-GO-INCONCLUSIVE),
   and the second may wait only as long as the window needs - until the first run's oldest request leaves it. The
   ledger's send times say when that was; the excess of the second run's first send over it is printed.
2. verify.yml with the limit (its budget and ledger at work, a free window each run) against verify.yml without
   one (a stack whose limit is off, rate_limit.requests 0): target within 10 %.

    .venv/bin/python bench/bench_rate_budget.py [--rounds 5] [--json FILE]

Uses the cluster named by PGHARNESS_STATE if set, else starts (and removes) one of its own.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench_common import CollectionTree, finish, pg_cluster, run_playbook, stack_vars, start_stack, summary, write_vars

WINDOW = 60.0
TARGET_OVERHEAD = 0.10


def ledger_sends(directory):
    sends = []
    for path in Path(directory).glob("*.json"):
        sends.extend(json.loads(path.read_text(encoding="utf-8")).get("sends") or [])
    return sorted(sends)


def decided(report):
    """A verdict that is not NO-GO-INCONCLUSIVE."""
    return report is not None and report["verdict"] in ("GO", "NO-GO")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-rate-"))
    ledger = workdir / "rate-ledger"
    os.environ["CWS_RATE_LEDGER_DIR"] = str(ledger)
    tree = CollectionTree(workdir)
    out = {}
    with pg_cluster() as pg_facts:
        limited = start_stack(pg_facts, "bench_rl_%d" % os.getpid())
        unlimited = start_stack(pg_facts, "bench_nl_%d" % os.getpid(), rate_limit=1000000)
        try:
            limited_vars, unlimited_vars = workdir / "limited.json", workdir / "unlimited.json"
            write_vars(limited_vars, stack_vars(limited))
            write_vars(unlimited_vars, stack_vars(unlimited))
            no_limit = ["-e", json.dumps({"verify_rate_limit": {"requests": 0}})]

            # 1. back to back
            limited.clear_faults()
            limited.fresh_rate_window(force=True)
            first_s, first_rc, first, first_out = run_playbook(tree, "verify.yml", limited_vars, workdir)
            first_sends = ledger_sends(ledger)
            second_s, second_rc, second, second_out = run_playbook(tree, "verify.yml", limited_vars, workdir)
            second_sends = sorted((Counter(ledger_sends(ledger)) - Counter(first_sends)).elements())
            budget = 29
            # The second run's sends beyond what the window still had room for must wait for the first run's oldest.
            room = max(0, budget - len(first_sends))
            must_wait = len(second_sends) > room
            earliest = first_sends[0] + WINDOW if must_wait else None
            waited_for = second_sends[room] if must_wait else None
            out["back_to_back"] = {
                "first": {"seconds": round(first_s, 2), "verdict": first and first["verdict"], "decided": decided(first),
                          "rate_limited_requests": len(first_sends)},
                "second": {"seconds": round(second_s, 2), "verdict": second and second["verdict"],
                           "decided": decided(second), "rate_limited_requests": len(second_sends)},
                "second_had_to_wait": must_wait,
                "excess_over_the_window_s": round(waited_for - earliest, 3) if must_wait else 0.0,
            }
            if not (decided(first) and decided(second)):
                print(first_out[-2000:], second_out[-2000:], file=sys.stderr)

            # 2. with the limit vs without
            results = {"limited": [], "unlimited": []}
            for round_number in range(args.rounds + 1):
                for name in (("limited", "unlimited") if round_number % 2 else ("unlimited", "limited")):
                    stack = limited if name == "limited" else unlimited
                    stack.clear_faults()
                    stack.fresh_rate_window(force=True)
                    seconds, rc, report, output = run_playbook(
                        tree, "verify.yml", limited_vars if name == "limited" else unlimited_vars, workdir,
                        extra=() if name == "limited" else no_limit)
                    if rc != 0 or not report or report["verdict"] != "GO":
                        raise SystemExit("verify.yml (%s) was not GO:\n%s" % (name, output[-3000:]))
                    if round_number:  # the first round warms up
                        results[name].append(seconds)
        finally:
            limited.stop()
            unlimited.stop()
    figures = {name: summary(values) for name, values in results.items()}
    overhead = figures["limited"]["median"] / figures["unlimited"]["median"] - 1.0
    out.update({"rounds": args.rounds, "seconds": figures, "limit_overhead": round(overhead, 3),
                "met": {"both_decided": out["back_to_back"]["first"]["decided"] and out["back_to_back"]["second"]["decided"],
                        "second_waits_no_longer_than_needed": out["back_to_back"]["excess_over_the_window_s"] <= 1.0,
                        "within_10_percent": overhead <= TARGET_OVERHEAD}})
    b2b = out["back_to_back"]
    print("two verifies back to back under the real limit (30 a minute):")
    print("  first:  %5.1f s, %s, %d rate-limited requests" % (b2b["first"]["seconds"], b2b["first"]["verdict"],
                                                               b2b["first"]["rate_limited_requests"]))
    second = b2b["second"]
    print("  second: %5.1f s, %s, %d rate-limited requests; waited for the window: %s, %.3f s past the first run's"
          " oldest send leaving it" % (second["seconds"], second["verdict"], second["rate_limited_requests"],
                                       "yes" if b2b["second_had_to_wait"] else "no", b2b["excess_over_the_window_s"]))
    print("verify.yml, %d rounds, median (min-max):" % args.rounds)
    for name, label in (("limited", "with the limit (budget + ledger)"), ("unlimited", "without a limit")):
        print("  %-34s %6.2f s (%.2f-%.2f)" % (label, figures[name]["median"], figures[name]["min"], figures[name]["max"]))
    print("  overhead of the limit: %+.1f %% (target within %d %%)" % (overhead * 100, TARGET_OVERHEAD * 100))
    print("targets: %s" % ", ".join("%s %s" % (k, "MET" if v else "MISSED") for k, v in out["met"].items()))
    return finish(out, args.json)


if __name__ == "__main__":
    sys.exit(main())

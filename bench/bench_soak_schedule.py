"""Benchmark (not a test): how long playbooks/soak.yml holds a release, against a stable reference service behind
Caddy with real Prometheus and Alertmanager (tests/harness/canary_env.py) and a steady load.

A soak should end within its duration plus one round. On the real service a 120 s soak took 217 s, because each
round waited a whole interval after its own work. This runs the same soak (``--duration``, ``--interval``) with the
collection of the working tree and of an older revision (``--before``, the last one that waited after each round),
for the prometheus and the scrape source, and reports each run's wall time and its excess over the duration. "One
round" is measured too: the same playbook in check mode runs one round without waiting (the play's own cost
included). The goal: the working tree's wall time at most duration + that one round.

    .venv/bin/python bench/bench_soak_schedule.py [--duration 60] [--interval 20] [--before f81209a]
        [--sources prometheus,scrape] [--json out.json]

Uses the cluster named by PGHARNESS_STATE if set, else starts (and removes) one of its own.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "harness"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_common import CollectionTree, finish, pg_cluster, run_playbook, write_vars  # noqa: E402  pylint: disable=wrong-import-position
from canary_env import CanaryEnvironment  # noqa: E402  pylint: disable=wrong-import-position
from local_inventory import inventory_vars  # noqa: E402  pylint: disable=wrong-import-position

USER_TRAFFIC = 'sum(increase(http_requests_total{job="clean-api",route!="/metrics"}[15s])) > 20'


def soak_window(report):
    found = [r for c in (report or {}).get("criteria", []) if c["criterion"] == "soak.window" for r in c["records"]]
    return found[0] if found else None


def one_soak(env, tree, workdir, source, opts, check=False):
    """One soak.yml run under load -> {seconds, verdict, rounds ...}."""
    env.reset()
    local = Path(workdir) / "local-stack.json"
    write_vars(local, inventory_vars(env.stack.facts()))
    extra = Path(workdir) / "soak-vars.json"
    overrides = {"soak_duration_seconds": opts.duration, "soak_interval_seconds": opts.interval,
                 "soak_metrics_source": source,
                 # The load asks /healthz (the rate limit does not count it): count it as traffic in both sources.
                 "soak_scrape_exclude_routes": ["/metrics"]}
    write_vars(extra, env.soak_vars(**overrides))
    load = env.load(opts.duration * 3 + 120)
    load.start()
    try:
        env.prometheus.wait_for_samples(USER_TRAFFIC, timeout=60)
        seconds, code, report, output = run_playbook(tree, "soak.yml", local, workdir,
                                                     extra=["-e", "@%s" % extra] + (["--check"] if check else []))
    finally:
        load.stop(timeout=15)
    window = soak_window(report)
    evidence = (window or {}).get("evidence", {})
    result = {"seconds": round(seconds, 1), "returncode": code, "verdict": (report or {}).get("verdict"),
              "rounds_planned": evidence.get("rounds_planned"), "rounds_run": evidence.get("rounds_run"),
              "rounds_skipped": evidence.get("rounds_skipped", []), "summary": (window or {}).get("summary", "")[:200]}
    if report is None:
        result["output"] = output[-1500:]
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument("--interval", type=int, default=20)
    parser.add_argument("--before", default="f81209a", help="an older revision to compare with ('' for none)")
    parser.add_argument("--sources", default="prometheus,scrape")
    parser.add_argument("--json")
    opts = parser.parse_args(argv)
    out = {"duration_s": opts.duration, "interval_s": opts.interval, "runs": {}, "met": {}}
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as workdir, pg_cluster() as pg:
        trees = [CollectionTree(workdir)] + ([CollectionTree(workdir, opts.before)] if opts.before else [])
        env = CanaryEnvironment(pg, Path(workdir) / "canary-env").start()
        try:
            for source in opts.sources.split(","):
                one_round = one_soak(env, trees[0], workdir, source, opts, check=True)
                print("%s: one round (check mode, the play included) %.1f s" % (source, one_round["seconds"]), flush=True)
                out["runs"]["%s one round" % source] = one_round
                for tree in trees:
                    run = one_soak(env, tree, workdir, source, opts)
                    run["excess_s"] = round(run["seconds"] - opts.duration, 1)
                    out["runs"]["%s %s" % (source, tree.label)] = run
                    print("%s, %s: %.1f s for a %d s soak (+%.1f s), %s, rounds %s of %s, skipped %s" % (
                        source, tree.label, run["seconds"], opts.duration, run["excess_s"], run["verdict"],
                        run["rounds_run"], run["rounds_planned"], run["rounds_skipped"]), flush=True)
                    if tree.ref is None:
                        bound = opts.duration + one_round["seconds"]
                        out["met"]["%s within duration + one round (%.1f s)" % (source, bound)] = run["seconds"] <= bound
        finally:
            env.stop()
    for name, met in out["met"].items():
        print("%s: %s" % (name, "met" if met else "NOT met"))
    return finish(out, opts.json)


if __name__ == "__main__":
    sys.exit(main())

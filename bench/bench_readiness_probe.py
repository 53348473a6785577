"""Benchmark (not a test): one readiness_probe call with 20 probes against the reference service.

Starts the reference stack (RefStack on a pgcluster), then runs the module the way Ansible runs it
(a separate Python process):

  each probe alone   -> its time inside the module; the slowest one is the floor of any batch
  a trivial call     -> the module overhead (process start, imports, argument parsing, JSON out)
  all 20 in one call -> the wall time to compare

and prints the wall time of the 20-probe call against (slowest single probe + module overhead).
Target: at most 1.5x. ``--slow S`` switches the service's ``slow`` fault on (every request takes S
seconds longer), which makes the concurrency visible.

    .venv/bin/python bench/bench_readiness_probe.py [--slow 0.5] [--concurrency 8] [--runs 3]

Uses the cluster named by PGHARNESS_STATE if set, else starts (and removes) one of its own.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "harness"))

from pgcluster import running_or_new  # noqa: E402  pylint: disable=wrong-import-position
from modrun import run_module  # noqa: E402  pylint: disable=wrong-import-position
from refstack import started_stack  # noqa: E402  pylint: disable=wrong-import-position

ESTIMATE = {"beds": 2, "baths": 1.5, "cleaning_type": "deep"}


def twenty_probes(stack):
    user, password = stack.credentials["viewer"]
    admin = {"url_username": user, "url_password": password, "headers": {"X-Auth-MFA": "true"}}
    probes = [
        {"kind": "healthz"},
        {"kind": "readyz"},
        {"kind": "backup"},
        {"kind": "security_headers"},
        {"name": "estimate", "criterion": "smoke.estimate", "path": "/v1/estimate", "method": "POST", "write": False,
         "json_body": ESTIMATE, "assertions": [{"path": "total_before_tax", "op": ">", "value": 0}]},
        {"name": "validation", "criterion": "smoke.validation", "path": "/v1/leads", "method": "POST", "write": False,
         "json_body": {}, "status_code": 422, "content_type": "application/problem+json"},
        {"name": "openapi", "criterion": "smoke.docs", "path": "/openapi.json", "blocking": False,
         "assertions": [{"path": "openapi", "op": "regex", "value": r"^3\."}]},
        {"name": "docs", "criterion": "smoke.docs", "path": "/docs", "blocking": False, "content_type": "text/html"},
        {"name": "web_root", "criterion": "web.root", "path": "/"},
        {"name": "metrics", "criterion": "metrics.endpoint", "path": "/metrics", "bearer_token": stack.metrics_token,
         "blocking": False},
        {"name": "metrics_closed", "criterion": "metrics.endpoint", "path": "/metrics", "status_code": 401, "blocking": False},
        {"name": "readyz_jobs_fresh", "criterion": "jobs.heartbeat", "path": "/readyz",
         "assertions": [{"path": "checks[?name=='jobs'] | [0].detail.age_seconds", "op": "<",
                         "expected_path": "checks[?name=='jobs'] | [0].detail.threshold_seconds"}]},
        {"name": "profile", "criterion": "auth.roles", "path": "/v1/admin/profile",
         "assertions": [{"path": "role", "op": "==", "value": "viewer"}], **admin},
        {"name": "export_dlq", "criterion": "admin.export_dlq", "path": "/v1/admin/export-dead-letter?limit=1",
         "assertions": [{"path": "total", "op": "type", "value": "integer"}], **admin},
        {"name": "outbox_dlq", "criterion": "admin.outbox_dlq", "path": "/v1/admin/outbox/dead-letter?limit=1",
         "assertions": [{"path": "@", "op": "type", "value": "array"}], **admin},
        {"name": "jobs_status", "criterion": "jobs.status", "path": "/v1/admin/jobs/status",
         "assertions": [{"path": "length(@)", "op": ">", "value": 0}], **admin},
        {"name": "admin_anonymous", "criterion": "auth.anonymous", "path": "/v1/admin/profile", "status_code": 401,
         "required_headers": [{"name": "X-Admin-Auth-Fail-Reason", "value": "mfa_required"}]},
        {"name": "estimate_invalid", "criterion": "smoke.validation", "path": "/v1/estimate", "method": "POST",
         "write": False, "json_body": {"beds": -1}, "status_code": 422},
        {"name": "healthz_head", "criterion": "health.liveness", "path": "/healthz", "method": "HEAD"},
        {"name": "not_found", "criterion": "smoke.docs", "path": "/v1/metrics", "status_code": 404, "blocking": False},
    ]
    assert len(probes) == 20
    return probes


def listen_overflows():
    """The kernel's count of connections dropped because a listen backlog was full (Linux), or None."""
    try:
        with open("/proc/net/netstat", encoding="ascii") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return int(table.get("ListenOverflows", 0))
    return None


def timed(args):
    started = time.monotonic()
    result = run_module("readiness_probe", dict(args, rate_limit={"requests": 0}))
    wall_ms = (time.monotonic() - started) * 1000.0
    if result.get("failed"):
        raise SystemExit("module failed: %s" % result.get("msg"))
    return wall_ms, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=float, default=0.0, help="seconds the service adds to every request")
    parser.add_argument("--concurrency", type=int, default=8, help="the module's default is 8")
    parser.add_argument("--runs", type=int, default=3, help="repetitions of the 20-probe call (the median counts)")
    parser.add_argument("--target", type=float, default=1.5)
    args = parser.parse_args()

    cluster = contextlib.ExitStack()  # the cluster named by PGHARNESS_STATE, or one of our own until the end
    pg_facts = cluster.enter_context(running_or_new())
    # This measures the HTTP layer's concurrency (20 probes, many rounds), not the rate limit: the stack's limit is
    # lifted and so is the calls' budget (bench_rate_budget.py measures the limit's cost).
    try:
        stack = cluster.enter_context(started_stack(pg_facts, "bench_rp_%d" % os.getpid(), rate_limit=100000))
        if args.slow:
            stack.set_fault("slow", delay=args.slow)
        probes = twenty_probes(stack)
        base = {"base_url": stack.base_url, "retries": 0, "deadline": 120, "concurrency": args.concurrency}

        singles = []
        for probe in probes:
            wall_ms, result = timed(dict(base, probes=[probe]))
            singles.append((probe.get("name") or probe["kind"], wall_ms, result["elapsed_ms"],
                            [r["status"] for r in result["records"]]))
        overhead_ms = statistics.median(wall - inside for _name, wall, inside, _st in singles)
        slowest_name, _w, slowest_ms, _s = max(singles, key=lambda item: item[2])

        walls = []
        overflows_before = listen_overflows()
        for _run in range(args.runs):
            wall_ms, result = timed(dict(base, probes=probes))
            walls.append((wall_ms, result))
        wall_ms, result = sorted(walls, key=lambda item: item[0])[len(walls) // 2]

        overflows_after = listen_overflows()
        floor_ms = slowest_ms + overhead_ms
        ratio = wall_ms / floor_ms
        print("reference stack %s (slow fault: %ss), %d probes, concurrency %d" % (
            stack.base_url, args.slow, len(probes), args.concurrency))
        print("%-20s %10s %10s  %s" % ("probe alone", "wall ms", "in module", "statuses"))
        for name, wall, inside, statuses in singles:
            print("%-20s %10.1f %10.1f  %s" % (name, wall, inside, ",".join(statuses)))
        print("module overhead (median wall - in-module): %.1f ms" % overhead_ms)
        print("slowest single probe: %s, %.1f ms in module" % (slowest_name, slowest_ms))
        print("20 probes in one call: %.1f ms wall (median of %d; %.1f ms in module), status %s, counts %s" % (
            wall_ms, args.runs, result["elapsed_ms"], result["status"], result["counts"]))
        print("sequential estimate (sum of single in-module times + overhead): %.1f ms" % (
            sum(inside for _n, _w, inside, _s in singles) + overhead_ms))
        if overflows_before is not None:
            print("listen-queue overflows on this host during the 20-probe calls: %d (each costs a client ~1 s of"
                  " SYN retransmit; the reference service listens with a backlog of 5)" % (overflows_after - overflows_before))
        print("ratio wall / (slowest + overhead) = %.2f  (target <= %.2f): %s" % (
            ratio, args.target, "OK" if ratio <= args.target else "OVER TARGET"))
        return 0 if ratio <= args.target else 1
    finally:
        cluster.close()  # the stack first, then the cluster


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark (not a test): verify.yml over a fleet - N reference services on loopback ports as N inventory hosts
(one database behind them all, as an app fleet behind a load balancer has) - one verdict, with forks, against the
same playbook over one host.

Setup: one reference stack (database, migrations, jobs, its service) plus N-1 more service processes of the same
release on their own ports, and an inventory generated in a temp dir: hosts app01..appNN, connection local, each
with its own release_api_base_url. Then, in alternating order per round:

  one host:  ansible-playbook verify.yml -i <inventory of app01 alone>
  fleet:     ansible-playbook verify.yml -i <inventory of app01..appNN> --forks N   (one gate, one verdict)

Both must be GO; the fleet's report must name every host. Target: the fleet takes at most 3x one host.
``--db-once`` also times the fleet with verify_db_checks_run_once=true (the shared database checked from one host).

    .venv/bin/python bench/bench_fleet.py [--hosts 20] [--rounds 3] [--db-once] [--json FILE]

Note: with connection local every host's module processes run on this machine, so the fleet's wall time is bound
by this machine's cores; on a real fleet they run on the hosts themselves.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from bench_common import (ROOT, CollectionTree, loadavg, pg_cluster, run_playbook, stack_vars, start_stack, summary)

TARGET_RATIO = 3.0
SERVICE_ROOT = ROOT / "tests" / "reference_service"


def cpu_jiffies():
    """(busy, total) jiffies of the whole machine from /proc/stat, or None."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def start_services(stack, count, workdir, ports=None):
    """``count`` more service processes of the stack's release, over its database, on free loopback ports (or
    on ``ports``, to start them again where they were)."""
    procs = []
    for index in range(count):
        port_file = Path(workdir) / ("service-%02d.json" % index)
        if port_file.exists():
            port_file.unlink()
        port = ports[index] if ports else 0
        log = open(Path(workdir) / ("service-%02d.log" % index), "ab")  # pylint: disable=consider-using-with
        proc = subprocess.Popen([sys.executable, "-m", "refservice", "--host", "127.0.0.1", "--port", str(port),
                                 "--port-file", str(port_file)], env=stack.process_env(), cwd=str(SERVICE_ROOT),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        procs.append((proc, port_file))
    urls = []
    deadline = time.monotonic() + 60
    for proc, port_file in procs:
        while not port_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("a service process did not start (see %s)" % workdir)
            time.sleep(0.05)
        url = "http://127.0.0.1:%d" % json.loads(port_file.read_text(encoding="utf-8"))["port"]
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("service %s not healthy" % url)
            time.sleep(0.05)
        urls.append(url)
    return [proc for proc, dummy in procs], urls


def fresh_rate_windows(stack, procs, urls, workdir):
    """Every service starts with an empty rate-limit window and the controller with an empty ledger (untimed):
    the measured runs follow each other within a minute, and against the real limit of 30 requests a minute
    the later ones would otherwise wait for the window, which times the limit and not the gate."""
    ledger = Path(tempfile.mkdtemp(prefix="rate-ledger-", dir=str(workdir)))
    os.environ["CWS_RATE_LEDGER_DIR"] = str(ledger)
    stack.fresh_rate_window(ledger_dir=str(ledger), force=True)
    stop_services(procs)
    ports = [int(url.rsplit(":", 1)[1]) for url in urls]
    return start_services(stack, len(ports), workdir, ports=ports)[0]


def stop_services(procs):
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def write_inventory(path, stack, urls):
    """The local inventory's variables for every host, each host with its own service URL."""
    local = stack_vars(stack)
    common = {
        "release_label": "fleet of %d reference services" % len(urls),
        "release_admin_roles": local["admin_roles"], "release_metrics_token": local["metrics_token"],
        "release_db_dsn": local["db_dsn"], "release_db_app_role": local["db_app_role"],
        "release_migrations_dir": local["migrations_dir"], "release_app_dir": local["app_dir"],
        "release_backup_dir": local["backup_dir"], "release_env_file": local["env_file"],
        "release_artifacts_dir": "{{ lookup('ansible.builtin.env', 'CWS_ARTIFACTS_DIR') }}",
        # As the local inventory: a throw-away stack with the real rate limit, writes allowed.
        "release_allow_writes": True,
    }
    hosts = {}
    for index, url in enumerate(urls, start=1):
        hosts["app%02d" % index] = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                                    "release_api_base_url": url, "release_web_root_url": url + "/"}
    inventory = {"all": {"vars": common, "children": {"app": {"hosts": hosts}},
                         "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yaml.safe_dump(inventory, handle, sort_keys=True)
    return sorted(hosts)


def report(args, forks, results, reports, hosts, load, busy):
    """The figures of the rounds: printed, written to --json; 0 when the target ratio is met."""
    for name in [n for n in results if n != "one_host"]:
        reported = set(reports[name]["expected_hosts"])
        if reported != set(hosts):
            raise SystemExit("%s: the verdict covers %s, not the %d hosts" % (name, sorted(reported), len(hosts)))
    figures = {name: summary(values) for name, values in results.items()}
    ratio = figures["fleet"]["median"] / figures["one_host"]["median"]
    out = {"hosts": args.hosts, "forks": forks, "rounds": args.rounds, "cores": os.cpu_count(),
           "load_average_1min": [round(x, 2) for x in load if x is not None], "seconds": figures,
           "ratio_fleet_to_one_host": round(ratio, 2), "target_ratio": TARGET_RATIO, "met": ratio <= TARGET_RATIO,
           "fleet_records": sum(len(c["records"]) for c in reports["fleet"]["criteria"]),
           "cpu_busy_fraction": {name: round(sum(v) / len(v), 2) for name, v in busy.items()}}
    if args.db_once:
        out["ratio_fleet_db_once_to_one_host"] = round(figures["fleet_db_once"]["median"] / figures["one_host"]["median"], 2)
    print("verify.yml over %d reference services (forks %d, %d cores), %d rounds, 1-min load %s" % (
        args.hosts, forks, os.cpu_count(), args.rounds, out["load_average_1min"]))
    for name, figure in figures.items():
        print("%-16s median %6.2fs  min %6.2fs  max %6.2fs  (machine CPU busy %s%%)" % (
            name, figure["median"], figure["min"], figure["max"], int(100 * out["cpu_busy_fraction"].get(name, 0))))
    print("fleet / one host = %.2f (target <= %.1f): %s" % (ratio, TARGET_RATIO, "MET" if out["met"] else "MISSED"))
    if args.db_once:
        print("fleet with the database checked once / one host = %.2f" % out["ratio_fleet_db_once_to_one_host"])
    print("one verdict over %d hosts, %d records" % (len(hosts), out["fleet_records"]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(out, handle, indent=1, sort_keys=True)
    return 0 if out["met"] else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--forks", type=int, help="default: one per host")
    parser.add_argument("--db-once", action="store_true", help="also time the fleet with verify_db_checks_run_once=true")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    forks = args.forks or args.hosts

    workdir = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    tree = CollectionTree(workdir)
    results = {"one_host": [], "fleet": []}
    if args.db_once:
        results["fleet_db_once"] = []
    load = []
    busy = {}
    procs = []
    with pg_cluster() as pg_facts:
        stack = start_stack(pg_facts, "bench_fl_%d" % os.getpid())
        try:
            procs, urls = start_services(stack, args.hosts - 1, workdir)
            inventories = {"one": workdir / "one.yml", "fleet": workdir / "fleet.yml"}
            write_inventory(inventories["one"], stack, [stack.base_url])
            hosts = write_inventory(inventories["fleet"], stack, [stack.base_url] + urls)
            vars_file = workdir / "unused.json"  # the generated inventories carry the variables themselves

            def verify(label, extra):
                inventory = inventories["one" if label in ("one_host", "warm-up") else "fleet"]
                seconds, rc, report, output = run_playbook(tree, "verify.yml", vars_file, workdir, extra=extra,
                                                           inventory=inventory)
                if rc != 0 or not report or report["verdict"] != "GO":
                    failing = [r["summary"] for c in (report or {}).get("criteria", []) if c["outcome"] in ("fail", "inconclusive")
                               for r in c["records"] if r["status"] in ("fail", "error")]
                    raise SystemExit("%s: verify.yml was not GO (rc %s):\n%s\n%s" % (label, rc, output[-2000:],
                                                                                     "\n".join(failing[:20])))
                return seconds, report

            variants = [
                ("one_host", []),
                ("fleet", ["--forks", str(forks)]),
            ]
            if args.db_once:
                variants.append(("fleet_db_once", ["--forks", str(forks), "-e", "verify_db_checks_run_once=true"]))
            stack.clear_faults()
            procs = fresh_rate_windows(stack, procs, urls, workdir)
            verify("warm-up", variants[0][1])
            reports = {}
            for round_number in range(args.rounds):
                stack.clear_faults()  # fresh heartbeats (shared by every service: one database)
                load.append(loadavg())
                shift = round_number % len(variants)
                for name, extra in variants[shift:] + variants[:shift]:
                    procs = fresh_rate_windows(stack, procs, urls, workdir)
                    before = cpu_jiffies()
                    seconds, run_report = verify(name, extra)
                    after = cpu_jiffies()
                    results[name].append(seconds)
                    reports[name] = run_report
                    if before and after and after[1] > before[1]:
                        busy.setdefault(name, []).append((after[0] - before[0]) / float(after[1] - before[1]))
            load.append(loadavg())
        finally:
            stop_services(procs)
            stack.stop()
            shutil.rmtree(str(workdir), ignore_errors=True)

    return report(args, forks, results, reports, hosts, load, busy)


if __name__ == "__main__":
    sys.exit(main())

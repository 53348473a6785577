"""The job runner: python -m refservice.jobs --once [--job NAME ...] [--interval S].

Writes heartbeat rows into job_heartbeats for ``jobs-runner`` and for each job. A job that fails
records last_error/last_error_at and increments consecutive_failures; the runner still exits 0
(as the real runner does). The fault ``job_failing`` (faults.json in REFSERVICE_STATE_DIR, param
``job``, default email-dlq) makes one job fail on every cycle.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time

import psycopg2

from .faults import load_faults
from .settings import Settings

JOBS = ("outbox-delivery", "storage-janitor", "email-dlq")


def _outbox_delivery(cur):
    cur.execute("UPDATE outbox_events SET status = 'sent', attempts = attempts + 1 WHERE status = 'pending'")
    return {"delivered": cur.rowcount}


def _storage_janitor(cur):
    cur.execute("SELECT org_id FROM organizations ORDER BY org_id")
    stale = 0
    for (org_id,) in cur.fetchall():
        cur.execute("SET LOCAL app.current_org_id = %s", (str(org_id),))
        cur.execute("SELECT count(*) FROM order_photos WHERE created_at < now() - interval '180 days'")
        stale += cur.fetchone()[0]
    cur.execute("SET LOCAL app.current_org_id = ''")
    return {"stale_photos": stale}


def _email_dlq(cur):
    cur.execute("SELECT count(*) FROM outbox_events WHERE status = 'dead' AND kind LIKE 'email.%'")
    return {"dead_emails": cur.fetchone()[0]}


HANDLERS = {"outbox-delivery": _outbox_delivery, "storage-janitor": _storage_janitor, "email-dlq": _email_dlq}

UPSERT_OK = (
    "INSERT INTO job_heartbeats (name, last_heartbeat, runner_id, last_success_at, consecutive_failures)"
    " VALUES (%s, now(), %s, now(), 0) ON CONFLICT (name) DO UPDATE SET last_heartbeat = now(),"
    " runner_id = EXCLUDED.runner_id, last_success_at = now(), consecutive_failures = 0")
UPSERT_FAIL = (
    "INSERT INTO job_heartbeats (name, last_heartbeat, runner_id, last_error, last_error_at, consecutive_failures)"
    " VALUES (%s, now(), %s, %s, now(), 1) ON CONFLICT (name) DO UPDATE SET last_heartbeat = now(),"
    " runner_id = EXCLUDED.runner_id, last_error = EXCLUDED.last_error, last_error_at = now(),"
    " consecutive_failures = job_heartbeats.consecutive_failures + 1")


def run_cycle(conn, jobs, runner_id, state_dir):
    failing = load_faults(state_dir).get("job_failing")
    failing_job = (failing or {}).get("job", "email-dlq") if failing is not None else None
    results = {}
    for name in jobs:
        try:
            with conn.cursor() as cur:
                if name == failing_job:
                    raise RuntimeError("%s: delivery provider unreachable (simulated failure)" % name)
                results[name] = {"ok": True, **HANDLERS[name](cur)}
                cur.execute(UPSERT_OK, (name, runner_id))
            conn.commit()
        except (RuntimeError, psycopg2.Error) as exc:
            conn.rollback()
            results[name] = {"ok": False, "error": str(exc).strip()}
            with conn.cursor() as cur:
                cur.execute(UPSERT_FAIL, (name, runner_id, str(exc).strip()[:500]))
            conn.commit()
    with conn.cursor() as cur:
        cur.execute(UPSERT_OK, ("jobs-runner", runner_id))
    conn.commit()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(prog="refservice.jobs", description=__doc__.splitlines()[0])
    parser.add_argument("--job", action="append", choices=JOBS, help="job to run (repeatable; default all)")
    parser.add_argument("--once", action="store_true", help="run one cycle and exit")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between cycles without --once")
    parser.add_argument("--state-dir", help="directory holding faults.json (REFSERVICE_STATE_DIR)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    state_dir = args.state_dir or settings.state_dir
    if not settings.database_url:
        print("refservice.jobs: DATABASE_URL is required", file=sys.stderr)
        return 2
    jobs = args.job or list(JOBS)
    runner_id = "%s:%d" % (socket.gethostname(), os.getpid())
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    conn = psycopg2.connect(application_name="refservice-jobs", connect_timeout=5, **settings.db_kwargs)
    try:
        while True:
            results = run_cycle(conn, jobs, runner_id, state_dir)
            print(json.dumps({"runner_id": runner_id, "jobs": results}), flush=True)
            if args.once or stop:
                return 0
            deadline = time.monotonic() + args.interval
            while time.monotonic() < deadline and not stop:
                time.sleep(0.5)
            if stop:
                return 0
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())

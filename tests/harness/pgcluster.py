"""A throw-away PostgreSQL cluster on loopback, started from the system's server binaries.

Used by the tests, the benchmarks and the demo. As root the server runs as the ``postgres`` OS
user (initdb and postgres refuse to run as root). TCP connections on 127.0.0.1 need a password
(scram-sha-256), so password handling is exercised for real; the superuser's password is generated.

CLI:  python tests/harness/pgcluster.py bindir
      python tests/harness/pgcluster.py start --state FILE   (writes connection facts as JSON)
      python tests/harness/pgcluster.py stop --state FILE
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time

MISSING_HINT = ("PostgreSQL server binaries (initdb, pg_ctl) not found: install them "
                "(Debian/Ubuntu: apt-get install postgresql) or set PG_BINDIR")


def find_bindir():
    """Directory with initdb/pg_ctl: PG_BINDIR, the newest /usr/lib/postgresql/N/bin, or PATH."""
    candidates = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    versioned = glob.glob("/usr/lib/postgresql/*/bin")
    versioned.sort(key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0, reverse=True)
    candidates.extend(versioned)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(os.path.dirname(initdb))
    for cand in candidates:
        if os.access(os.path.join(cand, "initdb"), os.X_OK) and os.access(os.path.join(cand, "pg_ctl"), os.X_OK):
            return cand
    return None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgCluster:
    """Start/stop one cluster; ``facts`` is what clients need to connect."""

    def __init__(self, base_dir=None, port=None, bindir=None):
        self.bindir = bindir or find_bindir()
        if not self.bindir:
            raise RuntimeError(MISSING_HINT)
        self.base_dir = base_dir or tempfile.mkdtemp(prefix="cws-pg-")
        self.port = port or free_port()
        self.datadir = os.path.join(self.base_dir, "data")
        self.sockdir = os.path.join(self.base_dir, "sock")
        self.logfile = os.path.join(self.base_dir, "postgres.log")
        self.superuser = "postgres"
        self.password = "su-" + secrets.token_hex(12)
        self._run_as = None
        if os.geteuid() == 0:
            self._run_as = "postgres"

    def _cmd(self, args):
        if self._run_as:
            return ["runuser", "-u", self._run_as, "--"] + args
        return args

    def _own(self, path):
        if self._run_as:
            ent = pwd.getpwnam(self._run_as)
            os.chown(path, ent.pw_uid, ent.pw_gid)

    @property
    def facts(self):
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.superuser,
            "password": self.password,
            "dbname": "postgres",
            "socket_dir": self.sockdir,
            "base_dir": self.base_dir,
            "bindir": self.bindir,
            "dsn": "postgresql://%s:%s@127.0.0.1:%d/postgres" % (self.superuser, self.password, self.port),
        }

    def start(self, timeout=30):
        os.makedirs(self.sockdir, exist_ok=True)
        os.chmod(self.base_dir, 0o755)
        self._own(self.base_dir)
        self._own(self.sockdir)
        pwfile = os.path.join(self.base_dir, "pwfile")
        with open(pwfile, "w", encoding="utf-8") as handle:
            handle.write(self.password + "\n")
        self._own(pwfile)
        subprocess.run(self._cmd([os.path.join(self.bindir, "initdb"), "-D", self.datadir, "-U", self.superuser,
                                  "--pwfile", pwfile, "--auth-local=trust", "--auth-host=scram-sha-256",
                                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.unlink(pwfile)
        opts = ("-c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200" % self.sockdir)
        subprocess.run(self._cmd([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-o", opts,
                                  "-p", os.path.join(self.bindir, "postgres"), "-l", self.logfile,
                                  "-w", "-t", str(timeout), "start"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ, PGPORT=str(self.port)))
        return self.facts

    def stop(self):
        if os.path.isdir(self.datadir):
            subprocess.run(self._cmd([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-m", "fast", "-w", "stop"]),
                           check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    @classmethod
    def from_facts(cls, facts):
        cluster = cls(base_dir=facts["base_dir"], port=facts["port"], bindir=facts["bindir"])
        cluster.password = facts["password"]
        return cluster


@contextlib.contextmanager
def running_or_new():
    """Connection facts of the cluster named by PGHARNESS_STATE, or of a new one for the duration."""
    state = os.environ.get("PGHARNESS_STATE")
    if state and os.path.exists(state):
        with open(state, encoding="utf-8") as handle:
            yield json.load(handle)
        return
    cluster = PgCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["bindir", "start", "stop"])
    parser.add_argument("--state", help="JSON file holding the running cluster's facts")
    args = parser.parse_args(argv)
    if args.action == "bindir":
        bindir = find_bindir()
        if not bindir:
            print(MISSING_HINT, file=sys.stderr)
            return 2
        print(bindir)
        return 0
    if not args.state:
        parser.error("--state is required for %s" % args.action)
    if args.action == "start":
        started = time.monotonic()
        cluster = PgCluster()
        try:
            facts = cluster.start()
        except subprocess.CalledProcessError as exc:
            print("pgcluster: %s failed: %s" % (exc.cmd[-1], (exc.stderr or b"").decode(errors="replace")), file=sys.stderr)
            cluster.stop()
            return 1
        fd = os.open(args.state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(facts, handle)
        print("pgcluster: PostgreSQL on 127.0.0.1:%d (%.1fs)" % (facts["port"], time.monotonic() - started))
        return 0
    try:
        with open(args.state, encoding="utf-8") as handle:
            facts = json.load(handle)
    except FileNotFoundError:
        return 0
    PgCluster.from_facts(facts).stop()
    os.unlink(args.state)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the reference service: python -m refservice [--host 127.0.0.1] [--port 0] [--port-file FILE].

Settings come from the environment (APP_ENV, DATABASE_URL, ...). With --port 0 the kernel picks a
free port; --port-file receives {"pid", "host", "port"} once the socket is listening.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from .app import make_server
from .settings import Settings, SettingsError


def main(argv=None):
    parser = argparse.ArgumentParser(prog="refservice", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--state-dir", help="directory holding faults.json (REFSERVICE_STATE_DIR)")
    parser.add_argument("--migrations-dir", help="Alembic script directory (REFSERVICE_MIGRATIONS_DIR)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.state_dir:
        settings.state_dir = args.state_dir
    if args.migrations_dir:
        settings.migrations_dir = args.migrations_dir
    try:
        settings.validate()
    except SettingsError as exc:
        print("refservice: refusing to start: %s" % exc, file=sys.stderr)
        return 2
    server = make_server(settings, args.host, args.port)
    host, port = server.server_address[:2]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump({"pid": os.getpid(), "host": host, "port": port}, handle)
        os.replace(tmp, args.port_file)

    def _stop(_signum, _frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print("refservice: listening on http://%s:%d (APP_ENV=%s)" % (host, port, settings.app_env), file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        server.app.db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

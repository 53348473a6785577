"""Turn a running reference stack's state (refstack.py) into the variables the `local` inventory reads.

    python tests/harness/local_inventory.py --state .cache/refstack.json --out .cache/local-stack.json

The output holds credentials of the local throw-away stack: it is written with mode 0600.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def inventory_vars(facts, artifacts_dir=None):
    db = facts["db"]
    check_dsn = "postgresql://%s:%s@%s:%s/%s" % (db["superuser"], db["superuser_password"], db["host"], db["port"], db["dbname"])
    result = {
        "api_base_url": facts["base_url"],
        "admin_roles": {role: {"username": pair[0], "password": pair[1]} for role, pair in facts["credentials"].items()},
        "metrics_token": facts["metrics_token"],
        "db_dsn": check_dsn,
        "db_app_role": db["app_user"],
        "migrations_dir": facts["migrations_dir"],
        "app_dir": facts["state_dir"],
        "backup_dir": facts["backup_dir"],
        "env_file": facts["env_file"],
        "web_root_url": facts["base_url"] + "/",
        "rate_limit": facts["rate_limit"],
        "source_dsn": check_dsn,
    }
    if artifacts_dir:
        result["artifacts_dir"] = artifacts_dir
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    with open(args.state, encoding="utf-8") as handle:
        facts = json.load(handle)["facts"]
    for sub in ("logs", "var", "tmp"):  # the layout of an application directory
        os.makedirs(os.path.join(facts["state_dir"], sub), exist_ok=True)
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(inventory_vars(facts), handle, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

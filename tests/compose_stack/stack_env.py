"""Write the runtime settings of a compose deployment of the reference service: <app-dir>/.env (mode
0600, fresh random secrets, free loopback ports, a free private subnet) and a JSON file of the facts
a test or an inventory needs to reach it (ports, DSNs, admin credentials). Keeps an existing .env
unless --force.

    python3 tests/compose_stack/stack_env.py --app-dir DIR --project NAME --repo REPO --out stack.json
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import secrets
import socket
import subprocess
import sys

ROLES = ("admin", "dispatcher", "accountant", "viewer")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def used_networks():
    try:
        out = subprocess.run(["ip", "-4", "route", "show"], check=False, capture_output=True, text=True).stdout
    except OSError:
        return []
    nets = []
    for line in out.splitlines():
        first = line.split(" ", 1)[0]
        try:
            nets.append(ipaddress.ip_network(first, strict=False))
        except ValueError:
            continue
    return nets


def free_subnet():
    used = used_networks()
    candidates = list(range(16, 250))
    random.shuffle(candidates)
    for third in candidates:
        net = ipaddress.ip_network("10.231.%d.0/24" % third)
        if not any(net.overlaps(other) for other in used if other.prefixlen > 0):
            return net
    raise SystemExit("stack_env: no free 10.231.x.0/24 subnet")


def token(length):
    return secrets.token_urlsafe(length)[:length]


def read_env(path):
    values = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _sep, value = line.partition("=")
                values[key] = value
    return values


def new_env(project):
    subnet = free_subnet()
    gateway = str(next(subnet.hosts()))
    owner, app, superuser = token(24), token(24), token(24)
    values = {
        "COMPOSE_PROJECT_NAME": project,
        "API_PORT": str(free_port()),
        "DB_PORT": str(free_port()),
        "COMPOSE_SUBNET": str(subnet),
        "COMPOSE_GATEWAY": gateway,
        "DB_NAME": "cleanwithsnapshot",
        "DB_OWNER_USER": "cws_owner",
        "DB_APP_USER": "cws_app",
        "POSTGRES_PASSWORD": superuser,
        "DB_OWNER_PASSWORD": owner,
        "DB_APP_PASSWORD": app,
        "DATABASE_URL": "postgresql://cws_app:%s@db:5432/cleanwithsnapshot" % app,
        "REFSERVICE_MIGRATION_URL": "postgresql+psycopg2://cws_owner:%s@db:5432/cleanwithsnapshot" % owner,
        "APP_ENV": "prod",
        "AUTH_SECRET_KEY": token(40),
        "CLIENT_PORTAL_SECRET": token(40),
        "WORKER_PORTAL_SECRET": token(40),
        "ADMIN_PROXY_AUTH_SECRET": token(32),
        "METRICS_ENABLED": "true",
        "METRICS_TOKEN": token(24),
        "STRICT_CORS": "true",
        "CORS_ORIGINS": "https://app.example.com,https://admin.example.com",
        "TRUST_PROXY_HEADERS": "true",
        "TRUSTED_PROXY_IPS": "127.0.0.1,%s" % gateway,
        "LEGACY_BASIC_AUTH_ENABLED": "true",
        "ADMIN_READ_ONLY": "false",
        "ADMIN_MFA_REQUIRED": "false",
        "RATE_LIMIT_PER_MINUTE": "30",  # the real default: the scenario runs under the real limit
        "JOB_HEARTBEAT_REQUIRED": "true",
        "JOB_HEARTBEAT_TTL_SECONDS": "180",
        "BACKUP_DIR": "/app/var/state/backups",
        "CAPTCHA_MODE": "off",
    }
    for role in ROLES:
        values["%s_BASIC_USERNAME" % role.upper()] = "release-%s" % role
        values["%s_BASIC_PASSWORD" % role.upper()] = token(20)
    return values


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app-dir", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--out", required=True, help="the JSON facts file to write (mode 0600)")
    parser.add_argument("--artifacts-dir", default="")
    parser.add_argument("--container-cli", default="docker")
    parser.add_argument("--force", action="store_true", help="write a new .env even when one exists")
    args = parser.parse_args(argv)
    app_dir = os.path.abspath(args.app_dir)
    os.makedirs(app_dir, exist_ok=True)
    env_file = os.path.join(app_dir, ".env")
    if os.path.exists(env_file) and not args.force:
        values = read_env(env_file)
    else:
        values = new_env(args.project)
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("# Runtime settings of this deployment (never committed; kept across releases).\n")
            handle.writelines("%s=%s\n" % item for item in values.items())
    facts = {
        "app_dir": app_dir,
        "env_file": env_file,
        "project": values["COMPOSE_PROJECT_NAME"],
        "repo": os.path.abspath(args.repo) if os.path.exists(args.repo) else args.repo,
        "api_port": int(values["API_PORT"]),
        "db_port": int(values["DB_PORT"]),
        "subnet": values["COMPOSE_SUBNET"],
        "gateway": values["COMPOSE_GATEWAY"],
        "db_name": values["DB_NAME"],
        "db_app_user": values["DB_APP_USER"],
        "db_app_dsn": "postgresql://%s:%s@127.0.0.1:%s/%s" % (values["DB_APP_USER"], values["DB_APP_PASSWORD"],
                                                              values["DB_PORT"], values["DB_NAME"]),
        "db_owner_dsn": "postgresql://%s:%s@127.0.0.1:%s/%s" % (values["DB_OWNER_USER"], values["DB_OWNER_PASSWORD"],
                                                                values["DB_PORT"], values["DB_NAME"]),
        # The cluster's superuser: the restore drill's source (forced RLS filters every other role's dump).
        "db_superuser_dsn": "postgresql://postgres:%s@127.0.0.1:%s/%s" % (values["POSTGRES_PASSWORD"], values["DB_PORT"],
                                                                          values["DB_NAME"]),
        "admin_roles": {role: {"username": values["%s_BASIC_USERNAME" % role.upper()],
                               "password": values["%s_BASIC_PASSWORD" % role.upper()]} for role in ROLES},
        "metrics_token": values["METRICS_TOKEN"],
        "artifacts_dir": os.path.abspath(args.artifacts_dir) if args.artifacts_dir else os.path.join(app_dir, "..", "artifacts"),
        "container_cli": [args.container_cli],
        "secrets": sorted({values[key] for key in values if key.endswith(("PASSWORD", "SECRET", "SECRET_KEY", "TOKEN"))}),
    }
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(facts, handle, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Settings from environment variables, named like the real service's settings."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from . import DEFAULT_ORG_ID

ROLES = ("owner", "admin", "dispatcher", "accountant", "viewer")
BACKUP_MARKER = "LAST_SUCCESS.txt"


class SettingsError(ValueError):
    """The configuration does not satisfy the production requirements."""


def _bool(value, default=False):
    if value is None or value == "":
        return default
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _list(value):
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def parse_database_url(url):
    """postgresql[+driver]://user:password@host:port/db -> keyword arguments for psycopg2.connect."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise SettingsError("DATABASE_URL must be a postgresql:// URL")
    kwargs = {"host": parts.hostname or "127.0.0.1", "port": parts.port or 5432,
              "dbname": unquote(parts.path.lstrip("/")) or "postgres"}
    if parts.username:
        kwargs["user"] = unquote(parts.username)
    if parts.password:
        kwargs["password"] = unquote(parts.password)
    return kwargs


@dataclass
class Settings:
    app_env: str = "dev"
    app_name: str = "cleaning-economy-bot"             # APP_NAME: the `service` label of the HTTP metrics
    database_url: str = ""
    admin_read_only: bool = False
    admin_mfa_required: bool = False
    rate_limit_per_minute: int = 30
    metrics_enabled: bool = True
    metrics_token: str = ""
    users: dict = field(default_factory=dict)          # role -> (username, password)
    backup_dir: str = "/opt/backups/postgres"
    backup_max_age_seconds: int = 26 * 3600
    job_heartbeat_required: bool = True
    job_heartbeat_ttl_seconds: int = 180
    jobs_enabled: bool = False                         # JOBS_ENABLED: reported by /readyz, gates nothing
    cors_origins: list = field(default_factory=list)
    strict_cors: bool = False
    trust_proxy_headers: bool = False
    trusted_proxy_ips: list = field(default_factory=list)
    captcha_mode: str = "off"
    default_org_id: str = DEFAULT_ORG_ID
    state_dir: str = ""
    migrations_dir: str = ""
    secrets: dict = field(default_factory=dict)

    @property
    def db_kwargs(self):
        return parse_database_url(self.database_url)

    @classmethod
    def from_env(cls, env=None):
        env = os.environ if env is None else env
        users = {}
        for role in ROLES:
            user = env.get("%s_BASIC_USERNAME" % role.upper(), "")
            password = env.get("%s_BASIC_PASSWORD" % role.upper(), "")
            if user and password:
                users[role] = (user, password)
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        return cls(
            app_env=env.get("APP_ENV", "dev"),
            app_name=env.get("APP_NAME") or "cleaning-economy-bot",
            database_url=env.get("DATABASE_URL", ""),
            admin_read_only=_bool(env.get("ADMIN_READ_ONLY")),
            admin_mfa_required=_bool(env.get("ADMIN_MFA_REQUIRED")),
            rate_limit_per_minute=int(env.get("RATE_LIMIT_PER_MINUTE") or 30),
            metrics_enabled=_bool(env.get("METRICS_ENABLED"), True),
            metrics_token=env.get("METRICS_TOKEN", ""),
            users=users,
            backup_dir=env.get("BACKUP_DIR", "/opt/backups/postgres"),
            backup_max_age_seconds=int(env.get("BACKUP_MAX_AGE_SECONDS") or 26 * 3600),
            job_heartbeat_required=_bool(env.get("JOB_HEARTBEAT_REQUIRED"), True),
            job_heartbeat_ttl_seconds=int(env.get("JOB_HEARTBEAT_TTL_SECONDS") or 180),
            jobs_enabled=_bool(env.get("JOBS_ENABLED")),
            cors_origins=_list(env.get("CORS_ORIGINS")),
            strict_cors=_bool(env.get("STRICT_CORS")),
            trust_proxy_headers=_bool(env.get("TRUST_PROXY_HEADERS")),
            trusted_proxy_ips=_list(env.get("TRUSTED_PROXY_IPS")) or ["127.0.0.1", "::1"],
            captcha_mode=env.get("CAPTCHA_MODE", "off"),
            default_org_id=env.get("DEFAULT_ORG_ID", DEFAULT_ORG_ID),
            state_dir=env.get("REFSERVICE_STATE_DIR", ""),
            migrations_dir=env.get("REFSERVICE_MIGRATIONS_DIR", os.path.join(here, "migrations")),
            secrets={name: env.get(name, "") for name in ("AUTH_SECRET_KEY", "CLIENT_PORTAL_SECRET",
                                                          "WORKER_PORTAL_SECRET", "ADMIN_PROXY_AUTH_SECRET")},
        )

    def validate(self):
        """The hard requirements the real service enforces at start in prod mode."""
        if not self.database_url:
            raise SettingsError("DATABASE_URL is required")
        parse_database_url(self.database_url)
        if self.app_env != "prod":
            return
        problems = []
        for name in ("AUTH_SECRET_KEY", "CLIENT_PORTAL_SECRET", "WORKER_PORTAL_SECRET"):
            if len(self.secrets.get(name) or "") < 32:
                problems.append("%s must be at least 32 characters in prod" % name)
        if not self.secrets.get("ADMIN_PROXY_AUTH_SECRET"):
            problems.append("ADMIN_PROXY_AUTH_SECRET is required in prod")
        if self.metrics_enabled and len(self.metrics_token) < 16:
            problems.append("METRICS_TOKEN must be at least 16 characters when metrics are enabled")
        if self.strict_cors and (not self.cors_origins or "*" in self.cors_origins):
            problems.append("CORS_ORIGINS must list explicit origins when STRICT_CORS=true")
        for role, (_user, password) in sorted(self.users.items()):
            if len(password) < 12:
                problems.append("%s_BASIC_PASSWORD must be at least 12 characters" % role.upper())
        if problems:
            raise SettingsError("; ".join(problems))

# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared PostgreSQL connection layer: one argument spec, one way to connect, errors that
never carry a password. The option names follow community.postgresql."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.six.moves.urllib.parse import urlsplit, unquote, parse_qsl

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import redact_text

PSYCOPG2_IMPORT_ERROR = None
try:
    import psycopg2
    import psycopg2.extensions
    from psycopg2 import sql as pgsql
    HAS_PSYCOPG2 = True
except ImportError:  # pragma: no cover - depends on the node
    psycopg2 = None
    pgsql = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = traceback.format_exc()

SSL_MODES = ["allow", "disable", "prefer", "require", "verify-ca", "verify-full"]
# SQLAlchemy-style URLs name a driver after '+': the service's DATABASE_URL is postgresql+psycopg://
DSN_SCHEMES = ("postgresql", "postgres")
CONNECTION_OPTIONS = ("login_host", "login_port", "login_user", "login_password", "login_unix_socket")


class PostgresConnectionError(Exception):
    """A connection could not be made; the message is already redacted."""


def postgres_common_argument_spec():
    """The connection options every database module accepts (documented once in the
    cleanwithsnapshot.release.postgres doc fragment)."""
    return dict(
        dsn=dict(type="str", no_log=True),
        login_host=dict(type="str", aliases=["host"]),
        login_port=dict(type="int", default=5432, aliases=["port"]),
        login_user=dict(type="str", default="postgres", aliases=["user"]),
        login_password=dict(type="str", no_log=True, aliases=["password"]),
        login_db=dict(type="str", aliases=["db"]),
        login_unix_socket=dict(type="str", default=""),
        ssl_mode=dict(type="str", default="prefer", choices=SSL_MODES),
        ca_cert=dict(type="path", aliases=["ssl_rootcert"]),
        connect_timeout=dict(type="int", default=10),
    )


def postgres_module(argument_spec, mutually_exclusive=(), **kwargs):
    """The AnsibleModule of a check that talks to PostgreSQL: the connection options' exclusions on top of the
    check's own, check mode (a check only reads, or writes only in a scratch database it drops) and, when
    psycopg2 is missing on the node, a failure that says so."""
    module = AnsibleModule(argument_spec=argument_spec,
                           mutually_exclusive=postgres_mutually_exclusive() + list(mutually_exclusive),
                           supports_check_mode=True, **kwargs)
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=PSYCOPG2_IMPORT_ERROR)
    return module


def postgres_mutually_exclusive():
    return [["dsn", option] for option in ("login_host", "login_unix_socket", "login_password")]


def parse_dsn(dsn):
    """``postgresql[+driver]://user:pass@host:port/db?opt=v`` or libpq ``key=value`` pairs ->
    psycopg2 keyword arguments. Raises ValueError with a message free of the password."""
    dsn = (dsn or "").strip()
    if "://" not in dsn:
        if "=" not in dsn:
            raise ValueError("dsn is neither a postgresql:// URL nor libpq key=value pairs")
        if psycopg2 is None:
            raise ValueError("libpq key=value dsn needs psycopg2 to parse")
        try:
            return dict(psycopg2.extensions.parse_dsn(dsn))
        except psycopg2.ProgrammingError:
            raise ValueError("dsn is not valid libpq key=value syntax")
    parts = urlsplit(dsn)
    scheme = parts.scheme.split("+", 1)[0].lower()
    if scheme not in DSN_SCHEMES:
        raise ValueError("dsn scheme %r is not postgresql:// (or postgresql+driver://)" % parts.scheme)
    kwargs = {}
    try:
        port = parts.port
    except ValueError:
        raise ValueError("dsn has an invalid port")
    if parts.hostname:
        kwargs["host"] = unquote(parts.hostname)
    if port:
        kwargs["port"] = port
    if parts.username:
        kwargs["user"] = unquote(parts.username)
    if parts.password is not None:
        kwargs["password"] = unquote(parts.password)
    dbname = parts.path.lstrip("/")
    if dbname:
        kwargs["dbname"] = unquote(dbname)
    for key, value in parse_qsl(parts.query):
        kwargs[key] = value
    return kwargs


def connection_kwargs(params, database=None):
    """psycopg2.connect keyword arguments from module params (dsn or login_* options)."""
    if params.get("dsn"):
        kwargs = parse_dsn(params["dsn"])
    else:
        kwargs = {"user": params.get("login_user") or "postgres", "port": params.get("login_port") or 5432}
        host = params.get("login_host") or params.get("login_unix_socket")
        if host:
            kwargs["host"] = host
        if params.get("login_password"):
            kwargs["password"] = params["login_password"]
        if params.get("login_db"):
            kwargs["dbname"] = params["login_db"]
    if params.get("dsn") and params.get("login_db"):
        kwargs["dbname"] = params["login_db"]
    if database:
        kwargs["dbname"] = database
    kwargs.setdefault("sslmode", params.get("ssl_mode") or "prefer")
    if params.get("ca_cert"):
        kwargs["sslrootcert"] = params["ca_cert"]
    if params.get("connect_timeout"):
        kwargs["connect_timeout"] = params["connect_timeout"]
    kwargs.setdefault("application_name", "cleanwithsnapshot.release")
    return kwargs


def secrets_of(params):
    """Every secret value the connection options carry, for redaction of messages and evidence."""
    found = []
    if params.get("login_password"):
        found.append(params["login_password"])
    if params.get("dsn"):
        found.append(params["dsn"])
        try:
            password = parse_dsn(params["dsn"]).get("password")
        except ValueError:
            password = None
        if password:
            found.append(password)
    return found


def describe_target(params, database=None):
    """A password-free ``user@host:port/db`` for messages and evidence."""
    try:
        kwargs = connection_kwargs(params, database)
    except ValueError:
        return "(invalid dsn)"
    return "%s@%s:%s/%s" % (kwargs.get("user", "?"), kwargs.get("host", "local socket"), kwargs.get("port", 5432),
                            kwargs.get("dbname", kwargs.get("user", "?")))


def validate_connection_params(module):
    """fail_json (naming the option) on connection input argument_spec cannot judge."""
    if params_dsn_error(module.params):
        module.fail_json(msg="dsn: %s" % params_dsn_error(module.params))
    if module.params.get("connect_timeout") is not None and module.params["connect_timeout"] < 1:
        module.fail_json(msg="connect_timeout must be 1 second or more, got %s" % module.params["connect_timeout"])
    port = module.params.get("login_port")
    if port is not None and not 0 < port < 65536:
        module.fail_json(msg="login_port must be between 1 and 65535, got %s" % port)


def params_dsn_error(params):
    if not params.get("dsn"):
        return None
    try:
        parse_dsn(params["dsn"])
    except ValueError as exc:
        return redact_text(str(exc), secrets_of(params))
    return None


def connect(params, database=None, read_only=False, autocommit=False):
    """A psycopg2 connection, or PostgresConnectionError with a redacted message.
    ``read_only`` makes every transaction READ ONLY, so a pure check cannot write."""
    if not HAS_PSYCOPG2:
        raise PostgresConnectionError("the psycopg2 Python library is not installed where the module runs")
    kwargs = connection_kwargs(params, database)
    try:
        conn = psycopg2.connect(**kwargs)
    except psycopg2.Error as exc:
        message = str(exc).strip() or exc.__class__.__name__
        reason = redact_text(message, secrets_of(params))
        raise PostgresConnectionError("cannot connect to %s: %s" % (describe_target(params, database), reason))
    if read_only:
        conn.set_session(readonly=True, autocommit=autocommit)
    elif autocommit:
        conn.autocommit = True
    return conn


def identifier(*names):
    """A safely quoted (optionally schema-qualified) SQL identifier."""
    return pgsql.Identifier(*names)


def fetch_all(cursor, query, args=None):
    cursor.execute(query, args)
    return cursor.fetchall()


def server_version(conn):
    return conn.server_version

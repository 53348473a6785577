# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running the PostgreSQL client programs (pg_dump, pg_restore) safely.

- binary discovery: an explicit path, a ``bindir``, or a search of PATH and the usual versioned
  install directories, choosing a client whose major version is not older than the server's;
- argument lists only (never a shell string), and connection facts passed through libpq
  environment variables merged into the module's environment: the password travels in
  ``PGPASSWORD``, never on a command line where ``ps`` would show it;
- stderr redacted and truncated before it becomes evidence.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import redact_text

# libpq connection keywords -> the environment variable libpq reads for each.
LIBPQ_ENVIRONMENT = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "sslcompression": "PGSSLCOMPRESSION",
    "requirepeer": "PGREQUIREPEER",
    "gssencmode": "PGGSSENCMODE",
    "channel_binding": "PGCHANNELBINDING",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "krbsrvname": "PGKRBSRVNAME",
    "client_encoding": "PGCLIENTENCODING",
}

# Where PostgreSQL client programs usually live besides PATH (Debian/Ubuntu, RHEL/PGDG, source builds).
SEARCH_GLOBS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
)

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


class ToolError(Exception):
    """A client program is missing, unusable or too old; the message says which and why."""


def version_num_major(version_num):
    """``server_version_num`` (150018, 90624) -> a comparable major (1500, 906)."""
    version_num = int(version_num)
    if version_num >= 100000:
        return (version_num // 10000) * 100
    return version_num // 100


def major_label(major):
    """1500 -> '15', 906 -> '9.6'."""
    if major >= 1000:
        return str(major // 100)
    return "%d.%d" % (major // 100, major % 100)


def parse_client_version(text):
    """``pg_dump (PostgreSQL) 15.18 (Debian ...)`` -> (major 1500, '15.18'); ValueError when unreadable."""
    match = _VERSION.search(text or "")
    if not match:
        raise ValueError("unrecognised version output: %r" % (text or "").strip()[:120])
    first = int(match.group(1))
    second = int(match.group(2) or 0)
    if first >= 10:
        return first * 100, "%d.%d" % (first, second)
    return first * 100 + second, "%d.%d" % (first, second)


def libpq_environment(kwargs):
    """psycopg2 connection keyword arguments -> libpq environment variables (strings).
    Raises ValueError naming a keyword libpq has no environment variable for."""
    env = {}
    for key, value in kwargs.items():
        if value is None or value == "":
            continue
        name = LIBPQ_ENVIRONMENT.get(key)
        if name is None:
            raise ValueError("connection parameter %r cannot be passed to the PostgreSQL client programs" % key)
        env[name] = str(value)
    return env


def _is_executable(path):
    return bool(path) and os.path.isfile(path) and os.access(path, os.X_OK)


def candidate_paths(name, bindir=None, explicit=None, prefer_dirs=(), environ=None):
    """The places ``name`` may be found, best first, without duplicates. An explicit path or a
    bindir is the only candidate when given (the operator chose it)."""
    if explicit:
        return [explicit]
    if bindir:
        return [os.path.join(bindir, name)]
    environ = os.environ if environ is None else environ
    found = []
    for directory in list(prefer_dirs) + (environ.get("PATH") or "").split(os.pathsep):
        if directory:
            found.append(os.path.join(directory, name))
    versioned = []
    for pattern in SEARCH_GLOBS:
        versioned.extend(glob.glob(os.path.join(pattern, name)))
    versioned.sort(key=_dir_version_key, reverse=True)
    found.extend(versioned)
    unique = []
    seen = set()
    for path in found:
        real = os.path.realpath(path)
        if real in seen or not _is_executable(path):
            continue
        seen.add(real)
        unique.append(path)
    return unique


_DIR_VERSION = re.compile(r"/(?:postgresql/|pgsql-|postgresql@)(\d+(?:\.\d+)?)(?:/|$)")


def _dir_version_key(path):
    match = _DIR_VERSION.search(path)
    return float(match.group(1)) if match else 0.0


class Tool(object):
    """A chosen client program: its path, version text and comparable major."""

    def __init__(self, name, path, major, version):
        self.name = name
        self.path = path
        self.major = major
        self.version = version

    def as_evidence(self):
        return {"path": self.path, "version": self.version}


def probe_version(run_command, path):
    """Run ``path --version`` -> (major, version) or raise ToolError."""
    try:
        rc, out, err = run_command([path, "--version"], expand_user_and_vars=False, handle_exceptions=False)
    except (OSError, IOError) as exc:
        raise ToolError("%s cannot be run: %s" % (path, exc.strerror or exc))
    if rc != 0:
        raise ToolError("%s --version exited %s: %s" % (path, rc, (err or out or "").strip()[:200]))
    try:
        return parse_client_version(out)
    except ValueError as exc:
        raise ToolError("%s: %s" % (path, exc))


def find_tool(run_command, name, minimum_major=None, bindir=None, explicit=None, prefer_dirs=(), environ=None,
              minimum_reason="the server"):
    """Choose ``name`` (pg_dump or pg_restore) whose major version is at least ``minimum_major``.

    Among several acceptable ones the closest version wins (same major as the server first);
    ToolError explains what was found and why it cannot be used."""
    candidates = candidate_paths(name, bindir=bindir, explicit=explicit, prefer_dirs=prefer_dirs, environ=environ)
    where = ("at %s" % explicit) if explicit else ("in bindir %s" % bindir) if bindir else "on PATH or in %s" % ", ".join(SEARCH_GLOBS)
    if explicit or bindir:
        if not _is_executable(candidates[0]):
            raise ToolError("%s not found or not executable %s" % (name, where))
    if not candidates:
        raise ToolError("%s not found %s: install the PostgreSQL client programs or set bindir" % (name, where))
    acceptable = []
    too_old = []
    for order, path in enumerate(candidates):
        major, version = probe_version(run_command, path)
        tool = Tool(name, path, major, version)
        if minimum_major is not None and major < minimum_major:
            too_old.append(tool)
        else:
            acceptable.append((major, order, tool))
    if not acceptable:
        oldest = ", ".join("%s %s (%s)" % (t.name, t.version, t.path) for t in too_old)
        wanted = major_label(minimum_major)
        raise ToolError("%s is older than %s (PostgreSQL %s): found %s; install a client of major version %s or newer "
                        "and point bindir (or %s_path) at it" % (name, minimum_reason, wanted, oldest, wanted, name))
    acceptable.sort(key=lambda item: (item[0], item[1]))
    return acceptable[0][2]


def pg_dump_args(tool, dump_path, snapshot=None, compress=None, schemas=None):
    """pg_dump's argument list: custom format into ``dump_path``; connection facts come from the
    environment (see libpq_environment), never from the command line."""
    args = [tool.path, "--format=custom", "--no-password", "--file=%s" % dump_path]
    if snapshot:
        args.append("--snapshot=%s" % snapshot)
    if compress is not None:
        args.append("--compress=%d" % int(compress))
    for schema in schemas or ():
        args.append("--schema=%s" % schema)
    return args


def pg_restore_args(tool, dump_path, database, jobs=1, privileges=True, owner=True):
    """pg_restore's argument list into ``database`` (a validated plain name, so libpq never reads it as a
    connection string); the other connection facts come from the environment."""
    args = [tool.path, "--no-password", "--dbname=%s" % database]
    if jobs and int(jobs) > 1:
        args.append("--jobs=%d" % int(jobs))
    if not privileges:
        args.append("--no-privileges")
    if not owner:
        args.append("--no-owner")
    args.append(dump_path)
    return args


def pg_restore_list_args(tool, dump_path):
    return [tool.path, "--list", dump_path]


def pg_restore_script_args(tool, dump_path, schema_only=False, data_table=None):
    """pg_restore writing SQL to stdout: the schema (``schema_only``) or one table's data."""
    args = [tool.path, "--file=-"]
    if schema_only:
        args.append("--schema-only")
    if data_table:
        args.extend(["--data-only", "--schema=%s" % data_table[0], "--table=%s" % data_table[1]])
    args.append(dump_path)
    return args


ERROR_LINE = re.compile(r"(^|\s)(error|fatal|could not|unexpected end|invalid)\b", re.IGNORECASE)


def summarize_stderr(text, secrets=(), max_chars=4000, max_errors=20):
    """Redacted, truncated stderr plus the error lines it holds (never hidden, never a leak)."""
    text = redact_text(text or "", secrets)
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line.strip()[:500] for line in lines if ERROR_LINE.search(line)]
    shown = text
    truncated = False
    if len(text) > max_chars:
        head = text[:max_chars * 3 // 4]
        tail = text[-(max_chars // 4):]
        shown = "%s\n[... %d characters not shown ...]\n%s" % (head, len(text) - len(head) - len(tail), tail)
        truncated = True
    return {
        "stderr": shown,
        "stderr_truncated": truncated,
        "stderr_lines": len(lines),
        "error_lines": errors[:max_errors],
        "error_count": len(errors),
    }


CONNECTION_FAILURE = re.compile(r"connection to server|could not connect|password authentication failed|"
                                r"no pg_hba\.conf entry|could not translate host name|timeout expired",
                                re.IGNORECASE)


def is_connection_failure(stderr):
    """True when a client program failed to reach its server (the check could not run), as opposed
    to the server or the archive reporting a problem (a finding)."""
    first = "\n".join((stderr or "").splitlines()[:3])
    return bool(CONNECTION_FAILURE.search(first))

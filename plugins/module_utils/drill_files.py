# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files of the backup restore drill: dump checksums and their ``.sha256`` sidecar, the manifest
that records what a kept dump must contain, the newest dump of a backup directory, the backup
marker written atomically, and scratch database names."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import fnmatch
import hashlib
import json
import os
import re
import secrets
import tempfile

MANIFEST_SUFFIX = ".manifest.json"
SHA256_SUFFIX = ".sha256"
MANIFEST_FORMAT = 1
SCRATCH_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_SHA256_LINE = re.compile(r"^\s*([0-9a-fA-F]{64})\b")


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso_utc(moment=None):
    """``2026-02-24T10:11:12+00:00``: what the service's /healthz/backup parses (datetime.fromisoformat)."""
    return (moment or utc_now()).replace(microsecond=0).isoformat()


def scratch_name(prefix, moment=None, token=None):
    """``<prefix>_<YYYYmmddHHMMSS>_<6 hex>``: unique per run, recognisable as a drill's database."""
    stamp = (moment or utc_now()).strftime("%Y%m%d%H%M%S")
    return "%s_%s_%s" % (prefix, stamp, token or secrets.token_hex(3))


def scratch_pattern(prefix):
    """A regular expression matching the names scratch_name() makes with ``prefix``."""
    return "^%s_[0-9]{14}_[0-9a-f]{6}$" % re.escape(prefix)


def sha256_file(path, chunk_size=1024 * 1024):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(chunk_size)
            if not chunk:
                break
            digest.update(chunk)
    return digest.hexdigest()


def read_sidecar_sha256(dump_path):
    """The digest in ``<dump>.sha256`` (sha256sum format), None when there is no sidecar.
    Raises ValueError when the sidecar exists but holds no digest."""
    sidecar = dump_path + SHA256_SUFFIX
    if not os.path.exists(sidecar):
        return None
    with open(sidecar, "r") as handle:
        first = handle.readline()
    match = _SHA256_LINE.match(first)
    if not match:
        raise ValueError("%s holds no sha256 digest" % sidecar)
    return match.group(1).lower()


def atomic_write(path, text, mode=0o644):
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename, so a
    reader sees the old content or the new, never a partial file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp_path = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_path, mode)
        os.replace(temp_path, path)
    except Exception:
        if os.path.exists(temp_path):
            os.unlink(temp_path)
        raise
    return path


def write_sidecar(dump_path, digest):
    return atomic_write(dump_path + SHA256_SUFFIX, "%s  %s\n" % (digest, os.path.basename(dump_path)))


def write_marker(path, moment=None):
    """The backup marker /healthz/backup reads: one ISO-8601 UTC timestamp."""
    stamp = iso_utc(moment)
    atomic_write(path, stamp + "\n")
    return stamp


def write_manifest(dump_path, manifest):
    return atomic_write(dump_path + MANIFEST_SUFFIX, json.dumps(manifest, indent=1, sort_keys=True) + "\n", mode=0o600)


def read_manifest(dump_path):
    """The manifest next to a dump, None when there is none; ValueError when it is unreadable."""
    path = dump_path + MANIFEST_SUFFIX
    if not os.path.exists(path):
        return None
    try:
        with open(path, "r") as handle:
            manifest = json.load(handle)
    except ValueError:
        raise ValueError("%s is not valid JSON" % path)
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT or "facts" not in manifest:
        raise ValueError("%s is not a drill manifest of format %s" % (path, MANIFEST_FORMAT))
    return manifest


def newest_dump(directory, pattern):
    """The most recently modified regular file in ``directory`` whose name matches ``pattern``
    (sidecars, manifests and partial files never count). None when nothing matches."""
    best = None
    for entry in os.listdir(directory):
        if entry.endswith((SHA256_SUFFIX, MANIFEST_SUFFIX, ".partial")) or entry.startswith("."):
            continue
        if not fnmatch.fnmatchcase(entry, pattern):
            continue
        path = os.path.join(directory, entry)
        if not os.path.isfile(path):
            continue
        mtime = os.stat(path).st_mtime
        if best is None or mtime > best[0] or (mtime == best[0] and entry > os.path.basename(best[1])):
            best = (mtime, path)
    return best[1] if best else None


def file_age_seconds(path, now=None):
    return max(0.0, (now or utc_now()).timestamp() - os.stat(path).st_mtime)


def remove_quietly(*paths):
    removed = []
    for path in paths:
        if path and os.path.exists(path):
            try:
                os.unlink(path)
                removed.append(path)
            except OSError:
                pass
    return removed

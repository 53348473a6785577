# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deploy lock of an application host: one run at a time deploys, rolls back or releases there.

The lock is a small JSON file naming its holder (run id, controller, user, play, version, start time). It is
created atomically and never half written: the holder is written to a temporary file in the same directory
first, then hard-linked to the lock's name, which fails when the name exists (create, never replace). A run
releases only a lock of its own run id unless forced; a lock older than its expiry may be broken on request,
and the record of the run that broke it names who held it and since when.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import tempfile
import time

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    FAIL,
    PASS,
    SKIPPED,
    SKIP_CHECK_MODE,
    make_record,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.json_file import read_json

CRITERION = "deploy.lock"
HOLDER_KEYS = ("run_id", "controller", "user", "play", "version")


class LockError(Exception):
    """A lock that cannot be read or written; the message names the path and what to do."""


def holder_text(holder):
    """``user@controller (play, version v2) since 2026-12-02T21:00:00+00:00``: who holds a lock, in few words."""
    holder = holder or {}
    text = "%s@%s (%s" % (holder.get("user") or "unknown", holder.get("controller") or "unknown",
                          holder.get("play") or "unknown play")
    if holder.get("version"):
        text += ", version %s" % holder["version"]
    return text + ") since %s" % (holder.get("started") or "unknown")


def new_holder(identity, now=None):
    """The holder written into the lock: the identity given plus the start time (ISO UTC and epoch seconds)."""
    now = time.time() if now is None else now
    holder = dict((key, str(identity.get(key) or "")) for key in HOLDER_KEYS)
    if not holder["run_id"]:
        raise LockError("run_id: every run needs an id of its own (release only releases its own lock)")
    holder["started_epoch"] = int(now)
    holder["started"] = datetime.datetime.fromtimestamp(int(now), datetime.timezone.utc).isoformat()
    holder["pid"] = identity.get("pid") or os.getpid()
    return holder


def read(path):
    """The holder of the lock, or None when it is free. An unreadable lock is an error, never 'free'."""
    try:
        holder = read_json(path)
    except (OSError, ValueError) as exc:
        raise LockError("path: the deploy lock %s cannot be read (%s); look at it, then remove it by hand" % (path, exc))
    if holder is None:
        return None
    if not isinstance(holder, dict) or not holder.get("run_id"):
        raise LockError("path: %s is not a deploy lock (no run_id); look at it, then remove it by hand" % path)
    return holder


def _create(path, holder):
    """Create the lock holding ``holder``: True, or False when it exists. Written fully before it is visible."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise LockError("path: the directory of the deploy lock %s does not exist (set release_lock_path)" % path)
    fd, tmp = tempfile.mkstemp(prefix=".release-lock.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(holder, handle, indent=1, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def _break(path, expected):
    """Remove the expired lock of ``expected``: True, or False when another run is breaking it or took it since.

    Breakers take turns through a directory created next to the lock, so none removes a lock taken meanwhile."""
    guard = path + ".breaking"
    try:
        os.mkdir(guard)
    except FileExistsError:
        return False
    try:
        current = read(path)
        if current is None:
            return True
        if current.get("run_id") != expected.get("run_id"):
            return False
        os.unlink(path)
        return True
    finally:
        os.rmdir(guard)


def age_seconds(holder, now=None):
    now = time.time() if now is None else now
    try:
        return max(0, int(now - float(holder.get("started_epoch"))))
    except (TypeError, ValueError):
        return None


def _result(status, summary, evidence, **fields):
    record = make_record(CRITERION, status, summary, evidence, skip_reason=fields.pop("skip_reason", None))
    result = {"records": [record], "changed": False, "acquired": False, "already_held": False, "refused": False,
              "holder": None, "broken": None}
    result.update(fields)
    return result


def _refusal(path, current, expiry, now, check_mode):
    age = age_seconds(current, now)
    expired = bool(expiry) and age is not None and age >= expiry
    hint = ("expired after %ss: release_lock_break=true breaks it" % expiry if expired
            else "wait for it to end, or release it (force) if that run is gone")
    summary = "%sheld by %s (%ss ago); %s; run %s, %s" % (
        "check mode: " if check_mode else "", holder_text(current), age, hint, current.get("run_id"), path)
    return _result(FAIL, summary, {"path": path, "holder": current, "age_s": age, "expired": expired},
                   refused=True, holder=current)


def acquire(path, identity, expiry=0, break_expired=False, check_mode=False, now=None):
    """Take the lock for the run ``identity``; a dict with the record, acquired/refused and the holder."""
    holder = new_holder(identity, now)
    broken = None
    for _attempt in range(3):
        current = read(path)
        if current is None:
            if check_mode:
                return _result(SKIPPED, "check mode: the deploy lock %s is free, nothing taken" % path,
                               {"path": path, "holder": None}, skip_reason=SKIP_CHECK_MODE)
            if _create(path, holder):
                summary = "taken by %s, run %s, %s" % (holder_text(holder), holder["run_id"], path)
                if broken:
                    summary = "BROKE the expired lock of %s (run %s); %s" % (
                        holder_text(broken), broken.get("run_id"), summary)
                return _result(PASS, summary, {"path": path, "holder": holder, "broken": broken}, changed=True,
                               acquired=True, holder=holder, broken=broken)
            continue
        if current.get("run_id") == holder["run_id"]:
            return _result(PASS, "held by this run already: %s, run %s, %s" % (holder_text(current), current["run_id"], path),
                           {"path": path, "holder": current}, acquired=True, already_held=True, holder=current)
        age = age_seconds(current, now)
        if not (break_expired and expiry and age is not None and age >= expiry):
            return _refusal(path, current, expiry, now, check_mode)
        if check_mode:
            return _result(SKIPPED, "check mode: would break the expired deploy lock %s of %s (%ss old), nothing "
                           "taken" % (path, holder_text(current), age), {"path": path, "holder": current},
                           holder=current, skip_reason=SKIP_CHECK_MODE)
        if _break(path, current):
            broken = current
    current = read(path)
    return _refusal(path, current, expiry, now, check_mode) if current else _result(
        FAIL, "deploy lock %s: no attempt to take it succeeded" % path, {"path": path}, refused=True)


def release(path, run_id, force=False, check_mode=False):
    """Release the lock of ``run_id`` (any holder's when forced); a free lock is left as it is."""
    current = read(path)
    if current is None:
        return _result(PASS, "deploy lock %s is free, nothing to release" % path, {"path": path, "holder": None})
    own = current.get("run_id") == run_id
    if not own and not force:
        summary = "not released: held by another run, %s, run %s (force releases it); %s" % (
            holder_text(current), current.get("run_id"), path)
        return _result(FAIL, summary, {"path": path, "holder": current}, refused=True, holder=current)
    what = "deploy lock of %s, run %s%s; %s" % (
        holder_text(current), current.get("run_id"), "" if own else " (another run, forced)", path)
    if check_mode:
        return _result(SKIPPED, "check mode: would release the %s" % what, {"path": path, "holder": current},
                       holder=current, skip_reason=SKIP_CHECK_MODE)
    os.unlink(path)
    return _result(PASS, "released the %s" % what, {"path": path, "holder": current, "forced": not own},
                   changed=True, holder=current)


def status(path, expiry=0, now=None):
    """Whether the lock is free or held, and by whom."""
    current = read(path)
    if current is None:
        return _result(PASS, "deploy lock %s is free" % path, {"path": path, "holder": None})
    age = age_seconds(current, now)
    expired = bool(expiry) and age is not None and age >= expiry
    summary = "held by %s (%ss ago%s), run %s; %s" % (
        holder_text(current), age, ", expired" if expired else "", current.get("run_id"), path)
    return _result(PASS, summary, {"path": path, "holder": current, "age_s": age, "expired": expired}, holder=current)

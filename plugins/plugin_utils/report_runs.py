# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reports people keep: every gate writes its reports into a folder of its own under the artifacts directory
(``20261207T044501Z-verify-v1.2.3``: UTC time, playbook, release label), then points ``latest`` at it and keeps
the newest N such folders.

Only folders this module created (the name's shape *and* a marker file inside) are ever pruned; anything else in
the artifacts directory is left alone. The top-level ``gonogo.json`` / ``gonogo.md`` / ``junit.xml`` are links into
``latest`` so that tools reading the single-folder layout of earlier releases keep working.

Controller-only, standard library only, POSIX (symbolic links).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import uuid

from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils import reports

LATEST = "latest"
RUN_MARKER = ".cleanwithsnapshot-run"
DEFAULT_KEEP_RUNS = 20

_RUN_NAME = re.compile(r"^(\d{8}T\d{6}Z)-[A-Za-z0-9._-]+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._]+")
_PART_LIMIT = 48


def _name_part(text):
    """A file-name-safe piece of ``text`` (``v1.2.3+build 7`` -> ``v1.2.3-build-7``)."""
    return _UNSAFE.sub("-", str(text or "")).strip("-.")[:_PART_LIMIT].strip("-.")


def run_folder_name(generated_at, playbook, release):
    """``2026-12-07T04:45:01Z``, ``verify.yml``, ``v1.2.3`` -> ``20261207T044501Z-verify-v1.2.3``."""
    stamp = re.sub(r"[-:]", "", generated_at)
    parts = [stamp, _name_part(re.sub(r"\.ya?ml$", "", os.path.basename(playbook or ""))) or "run"]
    label = _name_part(release)
    if label:
        parts.append(label)
    return "-".join(parts)


def _create_folder(root, name):
    """Create ``root/name`` (``name-2``, ``name-3`` ... when two gates decide in the same second) with the marker
    that makes it the collection's to prune."""
    if not os.path.isdir(root):
        os.makedirs(root, 0o755)
    candidate = name
    number = 1
    while True:
        path = os.path.join(root, candidate)
        try:
            os.mkdir(path, 0o755)
            break
        except FileExistsError:
            number += 1
            candidate = "%s-%d" % (name, number)
    with open(os.path.join(path, RUN_MARKER), "w", encoding="utf-8") as handle:
        handle.write("Reports of one gate decision, written by the cleanwithsnapshot.release collection; "
                     "folders with this file are pruned by its retention (keep_runs).\n")
    return path


def _replace_with_link(target, link_path):
    """Point ``link_path`` at ``target`` atomically (a new link renamed over the old one): a reader sees the old
    link or the new one, never none."""
    directory = os.path.dirname(link_path)
    temp = os.path.join(directory, ".%s.%s.tmp" % (os.path.basename(link_path), uuid.uuid4().hex))
    os.symlink(target, temp)
    try:
        os.replace(temp, link_path)
    except OSError:
        os.unlink(temp)
        raise


def _link(root, name, target, warnings):
    path = os.path.join(root, name)
    if os.path.isdir(path) and not os.path.islink(path):
        warnings.append("%s is a directory the collection did not create; it was left as it is and not pointed at %s"
                        % (path, target))
        return
    try:
        _replace_with_link(target, path)
    except OSError as exc:
        warnings.append("could not point %s at %s: %s" % (path, target, exc.strerror or exc))


def _run_key(root, name):
    """Newest last: by the folder name's time, then by when the folder was made (same-second runs)."""
    try:
        made = os.stat(os.path.join(root, name, RUN_MARKER)).st_mtime_ns
    except OSError:
        made = 0
    return (_RUN_NAME.match(name).group(1), made, name)


def run_folders(root):
    """The run folders this collection created in ``root``, oldest first."""
    try:
        names = os.listdir(root)
    except OSError:
        return []
    runs = [name for name in names if _RUN_NAME.match(name)
            and os.path.isdir(os.path.join(root, name)) and not os.path.islink(os.path.join(root, name))
            and os.path.isfile(os.path.join(root, name, RUN_MARKER))]
    return sorted(runs, key=lambda name: _run_key(root, name))


def prune(root, keep, current, warnings):
    """Remove the oldest run folders beyond the newest ``keep`` (0 keeps all); never ``current``. Returns the
    removed folders' names."""
    if not keep:
        return []
    runs = [name for name in run_folders(root) if name != current]
    excess = runs[:max(0, len(runs) - (keep - 1))]
    removed = []
    for name in excess:
        try:
            shutil.rmtree(os.path.join(root, name))
            removed.append(name)
        except OSError as exc:
            warnings.append("could not remove the old report folder %s: %s"
                            % (os.path.join(root, name), exc.strerror or exc))
    return removed


def write_run(report, root, playbook, keep=DEFAULT_KEEP_RUNS):
    """Write the reports into a new run folder of ``root``, point ``latest`` and the top-level report links at it
    and prune beyond ``keep``. Returns ``(paths, run_dir, removed, warnings)``; raises OSError when the reports
    could not be written (the half-made folder is removed)."""
    root = os.path.abspath(root)
    run_dir = _create_folder(root, run_folder_name(report["generated_at"], playbook, report.get("release")))
    try:
        paths = reports.write_reports(report, run_dir)
    except (OSError, IOError):
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    warnings = []
    name = os.path.basename(run_dir)
    _link(root, LATEST, name, warnings)
    for file_name in sorted(os.path.basename(path) for path in paths.values()):
        _link(root, file_name, os.path.join(LATEST, file_name), warnings)
    removed = prune(root, keep, name, warnings)
    return paths, run_dir, removed, warnings

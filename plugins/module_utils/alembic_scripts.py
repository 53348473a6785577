# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Alembic migration scripts read WITHOUT importing them.

The revision identifiers of a script (``revision``, ``down_revision``, ``branch_labels``,
``depends_on``) are literal module-level assignments, so ``ast`` reads them from the source: the
service's own dependencies (SQLAlchemy models, settings) are not needed where the check runs.

The revision graph follows Alembic's rules: a head is a revision no other revision names as its
``down_revision`` (``depends_on`` never makes a head disappear); ``depends_on`` entries may name a
revision or a branch label; the set of applied revisions is the closure over both down revisions and
dependencies.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import os
import re

REVISION_FIELDS = ("revision", "down_revision", "branch_labels", "depends_on")
# The file names Alembic loads from a version location (source files only, as by default).
SCRIPT_FILE = re.compile(r"(?!\.\#|__init__)(.*\.py)$")
# Scripts without a ``revision`` variable: Alembic's legacy rule takes the id from the file name.
LEGACY_FILE = re.compile(r"([a-f0-9]+)\.py$")


class MigrationScriptError(Exception):
    """A script or the history cannot be understood; the message names the file or revision."""


def _literal(node, field, filename):
    """The value of a literal node as str/None/tuple of str."""
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise MigrationScriptError("%s: %s is not a literal (a string, a tuple/list of strings or None)"
                                   % (filename, field))
    return _as_tuple(value, field, filename)


def _as_tuple(value, field, filename):
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (tuple, list, set, frozenset)):
        items = list(value)
        if isinstance(value, (set, frozenset)):
            items = sorted(items)
        for item in items:
            if not isinstance(item, str):
                raise MigrationScriptError("%s: %s holds a non-string item %r" % (filename, field, item))
        return tuple(items)
    raise MigrationScriptError("%s: %s must be a string, a tuple/list of strings or None, got %s"
                               % (filename, field, type(value).__name__))


def parse_source(source, filename="<script>"):
    """The revision fields of one script's source text: a dict with ``revision`` (str or None when
    absent) and ``down_revision``, ``branch_labels``, ``depends_on`` as tuples. Only module-level
    assignments count (plain or annotated: ``revision: str = "x"``); the last one wins, as on import."""
    try:
        tree = ast.parse(source, filename=filename)
    except (SyntaxError, ValueError) as exc:
        raise MigrationScriptError("%s: not valid Python (%s)" % (filename, getattr(exc, "msg", exc)))
    found = {}
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    targets.append(target.id)
                elif isinstance(target, (ast.Tuple, ast.List)):
                    # revision, down_revision = "a", "b"
                    names = [elt.id if isinstance(elt, ast.Name) else None for elt in target.elts]
                    if any(name in REVISION_FIELDS for name in names):
                        if not isinstance(node.value, (ast.Tuple, ast.List)) or len(node.value.elts) != len(names):
                            raise MigrationScriptError("%s: cannot read the tuple assignment of %s"
                                                       % (filename, ", ".join(n for n in names if n)))
                        for name, value_node in zip(names, node.value.elts):
                            if name in REVISION_FIELDS:
                                found[name] = (value_node, node.lineno)
            value = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if node.value is None:
                continue  # a bare annotation binds nothing
            targets.append(node.target.id)
            value = node.value
        else:
            continue
        for name in targets:
            if name in REVISION_FIELDS:
                found[name] = (value, node.lineno)
    result = {"revision": None, "down_revision": (), "branch_labels": (), "depends_on": ()}
    for field, (node, _lineno) in found.items():
        values = _literal(node, field, filename)
        if field == "revision":
            if len(values) != 1:
                raise MigrationScriptError("%s: revision must be one string" % filename)
            result["revision"] = values[0]
        else:
            result[field] = values
    return result


def script_paths(directory, recursive=False):
    """The files Alembic would load from one version location, in its order (sorted per folder)."""
    paths = []
    for root, dirs, files in os.walk(directory):
        if os.path.basename(root).endswith("__pycache__"):
            dirs[:] = []
            continue
        for filename in sorted(files):
            if SCRIPT_FILE.match(filename):
                paths.append(os.path.join(root, filename))
        if not recursive:
            break
        dirs.sort()
    return paths


def version_locations(migrations_dir):
    """``migrations_dir`` may be the Alembic script location (holding ``versions/``) or the
    versions folder itself."""
    versions = os.path.join(migrations_dir, "versions")
    if os.path.isdir(versions):
        return [versions]
    return [migrations_dir]


def load_scripts(migrations_dir, recursive=False):
    """Parse every revision script under ``migrations_dir``: a list of dicts (``path`` added)."""
    if not os.path.isdir(migrations_dir):
        raise MigrationScriptError("%s is not a directory" % migrations_dir)
    scripts = []
    for location in version_locations(migrations_dir):
        for path in script_paths(location, recursive=recursive):
            try:
                with open(path, "rb") as handle:
                    source = handle.read()
            except (IOError, OSError) as exc:
                raise MigrationScriptError("%s: cannot be read (%s)" % (path, exc.strerror or exc))
            info = parse_source(source, filename=path)
            if info["revision"] is None:
                legacy = LEGACY_FILE.match(os.path.basename(path))
                if not legacy:
                    raise MigrationScriptError("%s: no revision variable (and the file name is not a revision id)" % path)
                info["revision"] = legacy.group(1)
            info["path"] = path
            scripts.append(info)
    return scripts


class RevisionGraph:
    """The revision graph of a set of parsed scripts."""

    def __init__(self, scripts):
        self.scripts = list(scripts)
        self.revisions = {}
        self.duplicates = []
        for script in self.scripts:
            if script["revision"] in self.revisions:
                self.duplicates.append(script["revision"])
            self.revisions[script["revision"]] = script
        self.labels = {}
        self.problems = []
        for rev, script in self.revisions.items():
            for label in script["branch_labels"]:
                if label in self.labels and self.labels[label] != rev:
                    self.problems.append("branch label %r is used by both %s and %s" % (label, self.labels[label], rev))
                if label in self.revisions:
                    self.problems.append("branch label %r of %s is also a revision id" % (label, rev))
                self.labels[label] = rev
        for rev in sorted(set(self.duplicates)):
            self.problems.append("revision %s is present more than once" % rev)
        self.down = {}
        self.deps = {}
        referenced = set()
        for rev, script in self.revisions.items():
            downs = []
            for down in script["down_revision"]:
                if down not in self.revisions:
                    self.problems.append("revision %s names down_revision %s, which is not present" % (rev, down))
                    continue
                downs.append(down)
                referenced.add(down)
            self.down[rev] = tuple(downs)
            deps = []
            for dep in script["depends_on"]:
                target = self.resolve(dep)
                if target is None:
                    self.problems.append("revision %s depends_on %s, which is neither a revision nor a branch label" % (rev, dep))
                    continue
                deps.append(target)
            self.deps[rev] = tuple(deps)
        order = dict((script["revision"], index) for index, script in enumerate(self.scripts))
        self.heads = tuple(sorted((rev for rev in self.revisions if rev not in referenced), key=order.get))
        self.bases = tuple(sorted((rev for rev in self.revisions if not self.revisions[rev]["down_revision"]), key=order.get))
        cycle = self._find_cycle()
        if cycle:
            self.problems.append("the history has a cycle: %s" % " -> ".join(cycle))
        elif self.revisions and not self.heads:
            self.problems.append("the history has no head")

    def resolve(self, name):
        """A revision id or branch label -> the revision id, or None."""
        if name in self.revisions:
            return name
        return self.labels.get(name)

    def parents(self, rev):
        return self.down.get(rev, ()) + self.deps.get(rev, ())

    def _find_cycle(self):
        white, grey, black = 0, 1, 2
        color = dict((rev, white) for rev in self.revisions)
        for start in self.revisions:
            if color[start] != white:
                continue
            stack = [(start, iter(self.parents(start)))]
            path = [start]
            color[start] = grey
            while stack:
                node, children = stack[-1]
                advanced = False
                for child in children:
                    if color.get(child) == grey:
                        return path[path.index(child):] + [child]
                    if color.get(child) == white:
                        color[child] = grey
                        stack.append((child, iter(self.parents(child))))
                        path.append(child)
                        advanced = True
                        break
                if not advanced:
                    color[node] = black
                    stack.pop()
                    path.pop()
        return None

    def ancestors(self, revs):
        """``revs`` and every revision they need (down revisions and dependencies), as a set."""
        seen = set()
        todo = [rev for rev in revs if rev in self.revisions]
        while todo:
            rev = todo.pop()
            if rev in seen:
                continue
            seen.add(rev)
            todo.extend(self.parents(rev))
        return seen

    def is_ancestor(self, older, newer):
        return older in self.ancestors([newer])

    def describe(self, rev):
        script = self.revisions.get(rev)
        if not script:
            return {"revision": rev}
        return {"revision": rev, "down_revision": list(script["down_revision"]),
                "branch_labels": list(script["branch_labels"]), "depends_on": list(script["depends_on"]),
                "merge": len(script["down_revision"]) > 1, "file": os.path.basename(script["path"])}


def compare(graph, current, targets):
    """Where the database (``current`` version rows) stands against ``targets`` (the expected heads).

    Returns a dict: ``at_head`` (bool), ``pending`` (revisions the DB still needs, sorted),
    ``behind`` (their count: the steps ``alembic upgrade`` would apply), ``unknown`` (DB revisions
    absent from the scripts), ``ahead`` (DB revisions that descend from a target: a database newer
    than this code), ``extra`` (applied revisions outside the targets' history, e.g. another branch)."""
    current = list(current)
    unknown = sorted(rev for rev in current if rev not in graph.revisions)
    applied = graph.ancestors(current)
    wanted = graph.ancestors(targets)
    pending = sorted(wanted - applied)
    extra_all = applied - wanted
    ahead = sorted(rev for rev in current if rev in graph.revisions and rev not in wanted
                   and any(graph.is_ancestor(target, rev) for target in targets))
    beyond = graph.ancestors(ahead) - wanted
    extra = sorted(extra_all - beyond)
    return {
        "at_head": not unknown and not pending and not extra_all and bool(current),
        "pending": pending,
        "behind": len(pending),
        "unknown": unknown,
        "ahead": ahead,
        "ahead_by": len(beyond),
        "extra": extra,
    }

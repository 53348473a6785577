"""Alembic heads of a migrations directory, read by parsing the revision files (nothing imported)."""
from __future__ import annotations

import ast
import os


def _literal_assignments(path):
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), filename=path)
    found = {}
    for node in tree.body:
        targets, value = [], None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for target in targets:
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision", "depends_on"):
                try:
                    found[target.id] = ast.literal_eval(value)
                except ValueError:
                    pass
    return found


def _as_tuple(value):
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def read_revisions(migrations_dir):
    """{revision: (down_revisions...)} for every revision file under <migrations_dir>/versions."""
    versions = os.path.join(migrations_dir, "versions")
    revisions = {}
    for name in sorted(os.listdir(versions)):
        if not name.endswith(".py") or name.startswith("."):
            continue
        info = _literal_assignments(os.path.join(versions, name))
        if "revision" in info:
            revisions[info["revision"]] = _as_tuple(info.get("down_revision"))
    return revisions


def heads(migrations_dir):
    revisions = read_revisions(migrations_dir)
    parents = {parent for downs in revisions.values() for parent in downs}
    return sorted(rev for rev in revisions if rev not in parents)

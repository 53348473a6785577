# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The known criteria, read from docs/criteria.md: the collection's one list of criterion ids.

Each table of that page whose header starts with ``| id |`` lists criteria, one row each, the id(s) in backticks in
the first cell (``canary.promoted`` / ``canary.rolled_back`` share a row). The page ships with the collection, so
the list a waiver is checked against is the one people read; no second copy is kept in code. Controller-only,
standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import os
import re

CATALOG_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "docs", "criteria.md")

_ID_IN_CELL = re.compile(r"`([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+)`")
_HEADER = re.compile(r"^\|\s*id\s*\|", re.IGNORECASE)
_RULE = re.compile(r"^\|\s*-{3,}")


class CatalogError(Exception):
    """The catalog cannot be read: nothing can be said about which criteria exist."""


def parse(text):
    """The criterion ids of the page's id tables, in the page's order, each once."""
    ids = []
    in_table = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("|"):
            in_table = False
            continue
        if _HEADER.match(stripped):
            in_table = True
            continue
        if not in_table or _RULE.match(stripped):
            continue
        first_cell = stripped.split("|")[1]
        for criterion in _ID_IN_CELL.findall(first_cell):
            if criterion not in ids:
                ids.append(criterion)
    return ids


_cache = {}


def known_criteria(path=None):
    """The catalog's criterion ids (read once per path). Raises CatalogError when the page is missing or lists none."""
    path = os.path.normpath(path or CATALOG_PATH)
    if path not in _cache:
        try:
            with open(path, encoding="utf-8") as handle:
                ids = parse(handle.read())
        except (IOError, OSError) as exc:
            raise CatalogError("cannot read the criteria catalog %s: %s" % (path, exc.strerror or exc))
        if not ids:
            raise CatalogError("the criteria catalog %s lists no criterion" % path)
        _cache[path] = tuple(ids)
    return list(_cache[path])


def close_matches(name, known, limit=3):
    """The known criteria a misspelt ``name`` most likely meant, best first (difflib's ratio, cutoff 0.7)."""
    return difflib.get_close_matches(str(name), sorted(set(known)), n=limit, cutoff=0.7)


def unknown_criterion(name, known):
    """None when ``name`` is a known criterion, else the words that say so and name the close ones."""
    if name in known:
        return None
    close = close_matches(name, known)
    if close:
        return "%s is not a known criterion (did you mean %s?)" % (name, " or ".join(close))
    return "%s is not a known criterion (the criteria are listed in docs/criteria.md)" % name

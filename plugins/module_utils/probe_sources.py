# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Probes whose JSON body takes values from the answers of other probes of the same call (``body_from``).

The smoke lead of the real service must carry a whole ``/v1/estimate`` answer as its ``estimate_snapshot``, so
the lead probe takes it from the estimate probe's own answer instead of from a hand-written copy that goes stale
with every release of the pricing model.

Pure logic, standard library only: reading the option (``parse``), the dependency graph (``dependency_errors``:
unknown sources and cycles; ``run_order``: sources before the probes that need them), and filling a body from the
sources' answers (``fill_body``). Running and waiting are the module's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import assertions as asserts


class SourceSpecError(ValueError):
    """``body_from`` written so that it can never work (the module fails and names the option)."""


class SourceUnusable(Exception):
    """A source's answer cannot fill the body (no JSON, nothing at the path): the probe cannot be sent."""


def parse(raw, where, has_raw_body, json_body):
    """The validated ``body_from`` entries ``[{probe, key, path, compiled}]`` of one probe ([] when unset)."""
    if not raw:
        return []
    if has_raw_body:
        raise SourceSpecError("%s: body_from fills json_body; it cannot be used with body" % where)
    if json_body is not None and not isinstance(json_body, dict):
        raise SourceSpecError("%s: body_from needs json_body to be an object (or unset), got %s"
                              % (where, asserts.type_name(json_body)))
    entries = []
    keys = set()
    for index, item in enumerate(raw):
        at = "%s.body_from[%d]" % (where, index)
        if not isinstance(item, dict):
            raise SourceSpecError("%s must be a dict with probe and key" % at)
        source, key, path = item.get("probe"), item.get("key"), item.get("path")
        if not isinstance(source, str) or not source.strip():
            raise SourceSpecError("%s.probe must name a probe of this call" % at)
        if not isinstance(key, str) or not key.strip():
            raise SourceSpecError("%s.key must name a key of json_body" % at)
        if key in keys:
            raise SourceSpecError("%s.key '%s' is filled twice" % (at, key))
        keys.add(key)
        compiled = None
        if path is not None:
            try:
                compiled = asserts.compile_path(path, at)
            except asserts.AssertionSpecError as exc:
                raise SourceSpecError(str(exc))
        entries.append({"probe": source.strip(), "key": key, "path": path, "compiled": compiled})
    return entries


def describe(entries):
    """The entries as evidence (no compiled expressions)."""
    return [dict((k, entry[k]) for k in ("probe", "key", "path") if entry[k] is not None) for entry in entries]


def sources_of(entries):
    seen = []
    for entry in entries:
        if entry["probe"] not in seen:
            seen.append(entry["probe"])
    return seen


def dependency_errors(graph):
    """``graph``: probe name -> names of its sources, in probe order. Returns name -> reason for every probe that
    can never be sent: a source that is not a probe of the call, or a probe on a cycle of sources."""
    errors = {}
    names = list(graph)
    for name in names:
        unknown = [source for source in graph[name] if source not in graph]
        if unknown:
            errors[name] = "body_from names %s, not a probe of this call (probes: %s)" % (
                ", ".join("'%s'" % source for source in unknown), ", ".join(names))
    state = dict((name, 0) for name in names)  # 0 new, 1 on the current path, 2 done
    for start in names:
        if state[start]:
            continue
        path = [start]
        state[start] = 1
        stack = [(start, iter([s for s in graph[start] if s in graph]))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
                continue
            if state[child] == 1:
                cycle = path[path.index(child):] + [child]
                for member in cycle[:-1]:
                    errors.setdefault(member, "body_from makes a cycle of sources: %s" % " -> ".join(cycle))
            elif state[child] == 0:
                state[child] = 1
                path.append(child)
                stack.append((child, iter([s for s in graph[child] if s in graph])))
    return errors


def run_order(graph, errors):
    """Probe names with every usable source before the probes that take from it (otherwise probe order). A probe
    in ``errors`` waits for nothing, so the edges to it are dropped; what is left has no cycle."""
    order = []
    placed = set()

    def place(name):
        if name in placed:
            return
        placed.add(name)
        if name not in errors:
            for source in graph[name]:
                if source in graph:
                    place(source)
        order.append(name)

    for name in graph:
        place(name)
    return order


def fill_body(json_body, entries, documents):
    """A copy of ``json_body`` with each entry's key set from ``documents[source]`` (the source's parsed JSON
    answer). Raises SourceUnusable naming the source when its answer has nothing at the path."""
    body = copy.deepcopy(json_body) if isinstance(json_body, dict) else {}
    for entry in entries:
        document = documents[entry["probe"]]
        if entry["compiled"] is None:
            value = document
        else:
            try:
                value = entry["compiled"].search(document)
            except asserts.MissingLibrary as exc:
                raise SourceUnusable("body_from path %r of '%s': %s" % (entry["path"], entry["probe"], exc))
        if value is None:
            raise SourceUnusable("the answer of '%s' has nothing at %s for key '%s'"
                                 % (entry["probe"], "path %r" % entry["path"] if entry["path"] else "its root",
                                    entry["key"]))
        body[entry["key"]] = copy.deepcopy(value)
    return body

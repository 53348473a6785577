"""body_from of readiness_probe as pure logic: the option read and refused where it can never work, unknown
sources and cycles found, sources ordered before the probes that take from them, bodies filled."""
from __future__ import annotations

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import probe_sources as ps


def test_parse_reads_entries_and_refuses_what_can_never_work():
    entries = ps.parse([{"probe": "estimate", "key": "estimate_snapshot"},
                        {"probe": "estimate", "key": "total", "path": "total_before_tax"}], "probes[1]", False, {"a": 1})
    assert ps.describe(entries) == [{"probe": "estimate", "key": "estimate_snapshot"},
                                    {"probe": "estimate", "key": "total", "path": "total_before_tax"}]
    assert ps.sources_of(entries) == ["estimate"]
    assert ps.parse(None, "p", False, None) == []
    for raw, has_body, json_body, needle in (
            ([{"probe": "e", "key": "k"}], True, None, "cannot be used with body"),
            ([{"probe": "e", "key": "k"}], False, ["a"], "needs json_body to be an object"),
            ([{"probe": "e", "key": "k"}, {"probe": "f", "key": "k"}], False, None, "body_from[1].key 'k' is filled twice"),
            ([{"probe": " ", "key": "k"}], False, None, "body_from[0].probe must name a probe"),
            ([{"probe": "e", "key": ""}], False, None, "body_from[0].key must name a key"),
            ([{"probe": "e", "key": "k", "path": "a[?"}], False, None, "is not a valid JMESPath expression")):
        with pytest.raises(ps.SourceSpecError) as info:
            ps.parse(raw, "probes[1] (name 'lead')", has_body, json_body)
        assert needle in str(info.value)


def test_unknown_sources_and_cycles_are_named():
    graph = {"estimate": [], "lead": ["estimate"], "orphan": ["nope"], "a": ["b"], "b": ["a"], "self": ["self"],
             "after_cycle": ["a"]}
    errors = ps.dependency_errors(graph)
    assert errors["orphan"].startswith("body_from names 'nope', not a probe of this call (probes: estimate, lead,")
    assert errors["a"] == "body_from makes a cycle of sources: a -> b -> a"
    assert errors["b"] == "body_from makes a cycle of sources: a -> b -> a"
    assert errors["self"] == "body_from makes a cycle of sources: self -> self"
    # not on the cycle: it waits for a source that fails (an error record at run time), not a planning error
    assert set(errors) == {"orphan", "a", "b", "self"}


def test_run_order_puts_sources_first_and_keeps_probe_order_otherwise():
    graph = {"lead": ["estimate"], "healthz": [], "estimate": [], "quote": ["lead", "estimate"], "x": ["y"], "y": ["x"]}
    errors = ps.dependency_errors(graph)
    order = ps.run_order(graph, errors)
    assert sorted(order) == sorted(graph)
    assert order.index("estimate") < order.index("lead") < order.index("quote")
    assert order[:3] == ["estimate", "lead", "healthz"]


def test_fill_body_takes_the_whole_answer_or_a_part_and_never_changes_the_template():
    template = {"name": "Smoke", "estimate_snapshot": {"stale": True}}
    answer = {"pricing_config_id": "economy", "total_before_tax": 157.5, "breakdown": {"team_size": 1}}
    entries = ps.parse([{"probe": "estimate", "key": "estimate_snapshot"},
                        {"probe": "estimate", "key": "team", "path": "breakdown.team_size"}], "p", False, template)
    body = ps.fill_body(template, entries, {"estimate": answer})
    assert body == {"name": "Smoke", "estimate_snapshot": answer, "team": 1}
    assert template == {"name": "Smoke", "estimate_snapshot": {"stale": True}}
    assert ps.fill_body(None, entries[:1], {"estimate": answer}) == {"estimate_snapshot": answer}
    missing = ps.parse([{"probe": "estimate", "key": "k", "path": "nothing.here"}], "p", False, None)
    with pytest.raises(ps.SourceUnusable) as info:
        ps.fill_body({}, missing, {"estimate": answer})
    assert str(info.value) == "the answer of 'estimate' has nothing at path 'nothing.here' for key 'k'"

# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""soak_round_plan on a fake clock: the soak role's loop replayed with round works of chosen lengths."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.cleanwithsnapshot.release.plugins.filter.soak_round_plan import soak_round_plan

START = 1_800_000_000.0


def replay(rounds, interval, works, lead=0.0):
    """The role's loop on a fake clock: plan, wait, work. ``works[k-1]`` is round k's own work (probes, analysis,
    alerts) in seconds, the scrape analysis's lead included. -> (end offset, [(round, started offset)], skipped)."""
    clock = START
    started, skipped = [], []
    for number in range(1, rounds + 1):
        plan = soak_round_plan(START, round=number, rounds=rounds, interval=interval, now=clock, lead=lead)
        if not plan["run"]:
            skipped.append(number)
            continue
        clock += plan["wait"]
        started.append((number, clock - START))
        clock += works[number - 1]
    return clock - START, started, skipped


def test_rounds_start_at_their_own_time_from_the_start():
    # Prometheus looks back: round k runs at k x interval, whatever the earlier rounds took.
    end, started, skipped = replay(30, 60, [18.0] * 30)
    assert [offset for _n, offset in started] == [60.0 * k for k in range(1, 31)]
    assert skipped == [] and end == 1800 + 18


def test_the_real_services_120_s_soak_ends_within_its_duration_plus_one_round():
    # Observed: each round waited a whole interval after its own work; a 120 s soak took 217 s. Here the same works
    # (the scrape source: a baseline, one interval, then the measurement, plus the probes) end by 120 s + the work
    # beyond the lead.
    work = 60 + 18.0
    end, started, skipped = replay(2, 60, [work, work], lead=60)
    assert [offset for _n, offset in started] == [0.0, 60.0 + 18.0]
    assert skipped == [] and end == 60 + 18 + work
    assert end <= 120 + work


def test_a_late_round_does_not_push_the_later_ones():
    works = [10.0, 100.0, 10.0, 10.0]  # round 2 runs past round 3's time
    end, started, skipped = replay(4, 60, works)
    assert started == [(1, 60.0), (2, 120.0), (3, 220.0), (4, 240.0)]
    assert skipped == [] and end == 250.0


def test_a_round_whose_turn_passed_is_skipped_and_the_last_one_always_runs():
    works = [200.0, 10.0, 10.0, 10.0, 10.0]  # round 1 runs until 260 s: past the times of rounds 2 to 4
    end, started, skipped = replay(5, 60, works)
    assert skipped == [2, 3]  # round 4 (due 240 s) is late but round 5 is not due yet: it runs
    assert started == [(1, 60.0), (4, 260.0), (5, 300.0)] and end == 310.0
    end, started, skipped = replay(3, 60, [500.0, 10.0, 10.0])
    assert skipped == [2] and started[-1] == (3, 560.0)  # the last round runs however late
    assert end == 570.0


@pytest.mark.parametrize("interval, rounds, work", [(60, 30, 5.0), (60, 30, 59.0), (30, 4, 29.0), (10, 12, 9.9)])
def test_every_soak_ends_within_its_duration_plus_one_round(interval, rounds, work):
    end, started, skipped = replay(rounds, interval, [work] * rounds)
    assert skipped == [] and len(started) == rounds
    assert end <= rounds * interval + work + 1  # + the wait rounded up to a whole second


def test_the_plan_says_how_long_to_wait_and_how_late():
    plan = soak_round_plan(START, round=2, rounds=3, interval=60, now=START + 70.4)
    assert plan == {"round": 2, "due": 120.0, "wait": 50, "late": 0, "run": True, "skip_reason": None}
    plan = soak_round_plan(START, round=2, rounds=3, interval=60, now=START + 130.04)
    assert plan["wait"] == 0 and plan["late"] == 10.0 and plan["run"] is True
    plan = soak_round_plan(START, round=2, rounds=3, interval=60, now=START + 185)
    assert plan["run"] is False and plan["late"] == 65.0
    assert plan["skip_reason"].startswith("skipped: its turn (120 s after the start) passed") and "round 3" in plan["skip_reason"]


@pytest.mark.parametrize("args, words", [
    ({"round": 0}, "round must be at least 1"),
    ({"round": 4}, "round 4 is past the last round (3)"),
    ({"interval": 0}, "interval must be greater than 0"),
    ({"interval": "soon"}, "interval must be a number"),
    ({"rounds": 0}, "rounds must be at least 1"),
])
def test_bad_arguments_are_named(args, words):
    kwargs = dict({"round": 1, "rounds": 3, "interval": 60, "now": START}, **args)
    with pytest.raises(AnsibleFilterError) as caught:
        soak_round_plan(START, **kwargs)
    assert words in str(caught.value)

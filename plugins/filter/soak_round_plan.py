# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""soak_round_plan: when a soak round runs, counted from the soak's start, so a soak ends within its duration plus
one round however long each round's own work takes (waiting a whole interval after each round's work made a 120 s
soak take 217 s on the real service, and a 30-minute one about 54 minutes)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: soak_round_plan
author: Contributors to the cleanwithsnapshot.release collection
version_added: "0.1.0"
short_description: Schedule one soak round from the soak's start
description:
  - Round O(round) of O(rounds) observes the soak's O(round)-th interval - its measurement is due at
    C(start + round x interval). A round whose analysis first waits before it measures (the direct scrape takes
    its baseline, then scrapes again one interval later) starts that much earlier (O(lead)).
  - The wait is counted from the soak's start, never from the end of the previous round, so a late round does not
    push the later ones - the next round starts at its own time, or at once when that has passed.
  - A round whose turn came and went while an earlier round was still running (the next round is already due) is
    skipped and says so; the last round is never skipped. So the soak ends at its last measurement plus the work
    of at most one round.
options:
  _input:
    description: When the soak started, in seconds since the epoch (V(now().timestamp()) when the soak began).
    type: float
    required: true
  round:
    description: The round to plan, from 1.
    type: int
    required: true
  rounds:
    description: How many rounds the soak has.
    type: int
    required: true
  interval:
    description: Seconds between two rounds' measurements.
    type: float
    required: true
  now:
    description: The time now, in seconds since the epoch (V(now().timestamp())).
    type: float
    required: true
  lead:
    description: Seconds the round's own analysis waits before it measures (the scrape source's interval; V(0) for
      Prometheus, which looks back over its window).
    type: float
    default: 0
"""

EXAMPLES = r"""
- name: Plan round {{ soak_round }}
  ansible.builtin.set_fact:
    soak_round_plan: >-
      {{ soak_started | cleanwithsnapshot.release.soak_round_plan(round=soak_round | int, rounds=soak_rounds | int,
         interval=soak_interval_seconds | float, now=now().timestamp()) }}
"""

RETURN = r"""
_value:
  description:
    - C(round); C(due) - seconds after the start when the round should start; C(wait) - whole seconds to wait before
      it (rounded up, 0 when it is due or late); C(late) - seconds it is past its time (0 when on time); C(run) -
      false when it is skipped; C(skip_reason) - why, or V(null).
  type: dict
  sample: {round: 3, due: 180.0, wait: 42, late: 0, run: true, skip_reason: null}
"""

import math

from ansible.errors import AnsibleFilterError


def _number(value, name, minimum, integer=False):
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError("soak_round_plan: %s must be a number, got %r" % (name, value))
    if number < minimum:
        raise AnsibleFilterError("soak_round_plan: %s must be at least %s, got %s" % (name, minimum, number))
    return number


def soak_round_plan(started, round, rounds, interval, now, lead=0):  # pylint: disable=redefined-builtin
    """The plan of round ``round`` (see DOCUMENTATION): a pure function of the soak's start and the time ``now``."""
    started = _number(started, "the soak's start (the input)", 0)
    rounds = _number(rounds, "rounds", 1, integer=True)
    number = _number(round, "round", 1, integer=True)
    if number > rounds:
        raise AnsibleFilterError("soak_round_plan: round %d is past the last round (%d)" % (number, rounds))
    interval = _number(interval, "interval", 0)
    if interval <= 0:
        raise AnsibleFilterError("soak_round_plan: interval must be greater than 0")
    lead = min(_number(lead, "lead", 0), interval)
    elapsed = _number(now, "now", 0) - started

    def due(index):
        return index * interval - lead

    plan = {"round": number, "due": due(number), "wait": 0, "late": 0, "run": True, "skip_reason": None}
    if number < rounds and elapsed >= due(number + 1):
        plan.update(run=False, late=round_seconds(elapsed - due(number)),
                    skip_reason="skipped: its turn (%s s after the start) passed while an earlier round was running, "
                                "and round %d is due already" % (_seconds(due(number)), number + 1))
        return plan
    if elapsed < due(number):
        plan["wait"] = int(math.ceil(due(number) - elapsed))
    else:
        plan["late"] = round_seconds(elapsed - due(number))
    return plan


def round_seconds(value):
    return round(value, 1)


def _seconds(value):
    return ("%.1f" % value).rstrip("0").rstrip(".")


class FilterModule(object):
    def filters(self):
        return {"soak_round_plan": soak_round_plan}

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: canary_state
short_description: Record a canary release's progress on its host, decide resume or refuse, and make its records
version_added: 0.1.0
description:
  - Keeps the state of one canary release in a JSON file on the application host - the version running as
    canary, its traffic stages, each stage's outcome and how the release ended - and turns it into check result
    records for the release gate (C(canary.step), C(canary.promoted), C(canary.rolled_back)).
  - O(action=begin) plans a run. No state, or a finished one, starts afresh. The same version still running
    resumes after its last accepted stage (or goes straight to the rollback when a stage of it failed). Another
    version in progress, or changed stages, is refused with a message naming who started it and when, unless
    O(restart) abandons it. A version already promoted has nothing left to do.
  - O(action=step) records one stage from the records of its checks (metrics analysis, alerts, the traffic
    split) and says whether the canary may go on. O(action=finish) ends the run as promoted or rolled back.
  - The file is replaced atomically on every change; an unreadable file is an error, never "no canary".
author:
  - CleanWithSnapshot release engineering (!UNKNOWN)
attributes:
  check_mode:
    description: Plans and returns the same decision, and writes nothing.
    support: full
  diff_mode:
    description: Would show the state before and after.
    support: none
options:
  path:
    description: The state file (its directory must exist).
    type: path
    required: true
  action:
    description: What to do.
    type: str
    choices: [begin, step, finish, status]
    default: status
  version:
    description: The release that runs as canary (O(action=begin)).
    type: str
  stages:
    description:
      - The canary's share of the traffic at each stage, in percent, strictly increasing, each 1-100
        (O(action=begin)). The real service's default is C([10, 25, 50, 100]).
    type: list
    elements: int
  restart:
    description: Abandon a canary in progress (another version, or other stages) and start this one.
    type: bool
    default: false
  started_by:
    description: Who starts the run (controller, user, job), kept in the state and named when another run is refused.
    type: str
    default: ''
  weight:
    description: The stage being recorded (O(action=step)); one of the recorded stages.
    type: int
  records:
    description: The records of the stage's checks (O(action=step)).
    type: list
    elements: raw
    default: []
  results:
    description:
      - Registered results of the stage's check tasks (O(action=step)), added to O(records). A task that failed
        without records counts as an C(error) with its message; a skipped one as nothing.
    type: list
    elements: raw
    default: []
  allow_unknown:
    description:
      - Accept a stage whose checks could not decide (C(error), for example no data) instead of rolling back; those
        records are handed on as advisory. The real service's C(CANARY_ALLOW_UNKNOWN) default is false.
    type: bool
    default: false
  outcome:
    description: How the run ended (O(action=finish)).
    type: str
    choices: [promoted, rolled_back]
  problems:
    description: What went wrong while promoting or rolling back (O(action=finish)); named in the final record.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Plan the canary (resume, refuse or start)
  cleanwithsnapshot.release.canary_state:
    path: /opt/cleanwithsnapshot/.canary-state.json
    action: begin
    version: v2026.12.1
    stages: [10, 25, 50, 100]
    started_by: "{{ lookup('env', 'USER') }}"
  register: canary_plan

- name: Record the 10 % stage from its checks
  cleanwithsnapshot.release.canary_state:
    path: /opt/cleanwithsnapshot/.canary-state.json
    action: step
    weight: 10
    records: "{{ canary_split.records + canary_analysis.records + canary_alerts.records }}"
  register: canary_step

- name: End the run
  cleanwithsnapshot.release.canary_state:
    path: /opt/cleanwithsnapshot/.canary-state.json
    action: finish
    outcome: rolled_back
"""

RETURN = r"""
mode:
  description: The plan of O(action=begin) - C(start), C(resume) or C(done).
  returned: when action is begin
  type: str
  sample: resume
stages_left:
  description: The stages still to run, in order.
  returned: when action is begin
  type: list
  elements: int
  sample: [25, 50, 100]
failed_step:
  description: The recorded stage of this version that was not accepted, when a resumed run must roll back.
  returned: when action is begin
  type: dict
accepted:
  description: Whether the recorded stage lets the canary go on (O(action=step)).
  returned: when action is step
  type: bool
records:
  description:
    - O(action=step) - the stage's check records (as given; with O(allow_unknown) undecided ones as advisory) and
      one C(canary.step) record named C(canary.step.<weight>) whose evidence lists every part. The evidence of
      each of them names the stage, C(stage.weight), so the gate's reports show the measurements stage by stage.
    - O(action=finish) - one C(canary.promoted) (pass) or C(canary.rolled_back) (fail) record with every step.
    - O(action=begin) - in check mode one skipped C(canary.step) record with the plan; C(canary.promoted) when done.
  returned: always
  type: list
  elements: dict
state:
  description: The recorded state after the action (as it would be, in check mode).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import canary_state as cs


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            action=dict(type="str", choices=["begin", "step", "finish", "status"], default="status"),
            version=dict(type="str"),
            stages=dict(type="list", elements="int"),
            restart=dict(type="bool", default=False),
            started_by=dict(type="str", default=""),
            weight=dict(type="int"),
            records=dict(type="list", elements="raw", default=[]),
            results=dict(type="list", elements="raw", default=[]),
            allow_unknown=dict(type="bool", default=False),
            outcome=dict(type="str", choices=["promoted", "rolled_back"]),
            problems=dict(type="list", elements="str", default=[]),
        ),
        required_if=[("action", "begin", ("version", "stages")), ("action", "step", ("weight",)),
                     ("action", "finish", ("outcome",))],
        supports_check_mode=True,
    )
    path = module.params["path"]
    try:
        state = cs.load(path)
        if module.params["action"] == "status":
            module.exit_json(changed=False, state=state or {}, records=[])
        new_state, result = cs.act(module.params, state, module.check_mode)
        changed = new_state is not None and new_state != state
        if changed and not module.check_mode:
            cs.save(path, new_state)
    except cs.CanaryStateError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="path: the canary state %s cannot be written: %s" % (path, exc))
    module.exit_json(changed=changed, state=new_state if new_state is not None else (state or {}), **result)


if __name__ == "__main__":
    main()

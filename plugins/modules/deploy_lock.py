#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: deploy_lock
short_description: Take, release or read the deploy lock of an application host
version_added: 0.1.0
description:
  - One deploy, release or rollback run at a time on an application host. The lock is a JSON file on the host
    naming its holder - the run id, the controller, the user, the play, the version and the start time.
  - O(state=acquired) takes the lock. The file is written fully to a temporary name, then linked to O(path),
    which fails when the lock exists, so of two runs taking it at once exactly one wins. A lock of the same
    O(run_id) is already this run's (nothing changes). A lock of another run is refused with a C(fail) record
    naming its holder and RV(refused) set; the task itself does not fail, the play decides.
  - A lock older than O(expiry) seconds is broken only with O(break_expired); the record then says whose lock was
    broken and since when.
  - O(state=released) removes the lock of O(run_id); another run's lock is left alone (a C(fail) record) unless
    O(force). Releasing a free lock changes nothing. O(state=status) says whether the lock is free or held.
  - Returns one record of the criterion C(deploy.lock) for the release gate.
author:
  - CleanWithSnapshot release engineering (!UNKNOWN)
attributes:
  check_mode:
    description: Reads the lock and says what would happen; takes, breaks and releases nothing (a C(skipped) record
      with C(skip_reason=check_mode) where nothing is decided, a C(fail) record for a lock another run holds).
    support: full
  diff_mode:
    description: Would show the lock before and after.
    support: none
options:
  path:
    description: The lock file on the application host (its directory must exist).
    type: path
    required: true
  state:
    description: Take the lock, release it, or only read it.
    type: str
    choices: [acquired, released, status]
    default: status
  run_id:
    description: The id of this run, the same for every task of one run and unique per run.
    type: str
  controller:
    description: The controller host the run starts from, kept in the lock.
    type: str
    default: ''
  user:
    description: The user who starts the run, kept in the lock.
    type: str
    default: ''
  play:
    description: The playbook or play that holds the lock, kept in the lock.
    type: str
    default: ''
  version:
    description: The version being deployed or rolled back to, kept in the lock.
    type: str
    default: ''
  expiry:
    description: Seconds after which a lock counts as expired and may be broken with O(break_expired); C(0) never.
    type: int
    default: 7200
  break_expired:
    description: Break a lock older than O(expiry) held by another run (O(state=acquired)).
    type: bool
    default: false
  force:
    description: Release the lock whoever holds it (O(state=released)).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Take the deploy lock
  cleanwithsnapshot.release.deploy_lock:
    path: /opt/cleanwithsnapshot/.release-lock
    state: acquired
    run_id: "{{ lock_run_id }}"
    controller: "{{ lookup('ansible.builtin.pipe', 'hostname') }}"
    user: "{{ lookup('ansible.builtin.env', 'USER') }}"
    play: deploy.yml
    version: v2026.12.1
  register: lock_acquire

- name: Release it at the end of the run
  cleanwithsnapshot.release.deploy_lock:
    path: /opt/cleanwithsnapshot/.release-lock
    state: released
    run_id: "{{ lock_run_id }}"
"""

RETURN = r"""
records:
  description: One C(deploy.lock) record - who holds the lock, and whose expired lock was broken.
  returned: always
  type: list
  elements: dict
acquired:
  description: This run holds the lock now (O(state=acquired), never in check mode).
  returned: always
  type: bool
already_held:
  description: The lock was this run's already.
  returned: always
  type: bool
refused:
  description: Another run holds the lock; nothing was taken or released.
  returned: always
  type: bool
holder:
  description: The lock's holder (run_id, controller, user, play, version, started, started_epoch, pid), or null.
  returned: always
  type: dict
broken:
  description: The holder of the expired lock this run broke, or null.
  returned: always
  type: dict
msg:
  description: The record's summary.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import deploy_lock as dl
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import exit_with_records


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["acquired", "released", "status"], default="status"),
            run_id=dict(type="str"),
            controller=dict(type="str", default=""),
            user=dict(type="str", default=""),
            play=dict(type="str", default=""),
            version=dict(type="str", default=""),
            expiry=dict(type="int", default=7200),
            break_expired=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
        ),
        required_if=[("state", "acquired", ("run_id",)), ("state", "released", ("run_id",))],
        supports_check_mode=True,
    )
    params = module.params
    try:
        if params["state"] == "acquired":
            result = dl.acquire(params["path"], params, params["expiry"], params["break_expired"], module.check_mode)
        elif params["state"] == "released":
            result = dl.release(params["path"], params["run_id"], params["force"], module.check_mode)
        else:
            result = dl.status(params["path"], params["expiry"])
    except dl.LockError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="path: the deploy lock %s cannot be written: %s" % (params["path"], exc))
    extra = dict((key, result[key]) for key in ("acquired", "already_held", "refused", "holder", "broken"))
    exit_with_records(module, result["records"], changed=result["changed"], msg=result["records"][0]["summary"], **extra)


if __name__ == "__main__":
    main()

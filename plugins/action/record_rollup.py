# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""record_rollup: one record for many, built on the controller with check_result.rollup_record."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    SKIP_CHECK_MODE,
    SKIPPED,
    make_record,
    records_of_results,
    rollup_record,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import redact
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils.controller_action import ControllerAction

ARGUMENT_SPEC = dict(
    criterion=dict(type="str", required=True),
    name=dict(type="str"),
    label=dict(type="str"),
    records=dict(type="list", elements="raw", default=[]),
    results=dict(type="list", elements="raw", default=[]),
    evidence=dict(type="dict", default={}),
    blocking=dict(type="bool", default=True),
    skip_in_check_mode=dict(type="bool", default=False),
)


def _flatten(items):
    for item in items:
        if isinstance(item, list):
            yield from _flatten(item)
        else:
            yield item


class ActionModule(ControllerAction):
    """Combines on the controller; never connects to a host."""

    argument_spec = ARGUMENT_SPEC

    def run_on_controller(self, args, task_vars, result):
        parts = list(_flatten(args["records"]))
        parts.extend(records_of_results(args["results"], args["criterion"]))
        record = rollup_record(args["criterion"], parts, name=args["name"], label=args["label"],
                               evidence=args["evidence"], blocking=args["blocking"])
        if self._task.check_mode and args["skip_in_check_mode"]:
            record = make_record(args["criterion"], SKIPPED, "%s: planned in check mode, not observed"
                                 % (args["label"] or args["criterion"]), record["evidence"], args["blocking"],
                                 name=args["name"], skip_reason=SKIP_CHECK_MODE)
        record = redact(record)
        result.update(changed=False, records=[record], status=record["status"])
        return result

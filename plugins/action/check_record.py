# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""check_record: roles' own check results become records through check_result.make_record, on the
controller, with its validation and the shared redaction."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    SKIP_REASONS,
    STATUSES,
    make_record,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import redact
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils.controller_action import ControllerAction

RECORD_SPEC = dict(
    criterion=dict(type="str", required=True),
    name=dict(type="str"),
    status=dict(type="str", required=True, choices=list(STATUSES)),
    summary=dict(type="str", required=True),
    evidence=dict(type="dict", default={}),
    blocking=dict(type="bool", default=True),
    duration_ms=dict(type="float", default=0.0),
    skip_reason=dict(type="str", choices=list(SKIP_REASONS)),
)

ARGUMENT_SPEC = dict(
    records=dict(type="list", elements="dict", required=True, options=RECORD_SPEC),
    host=dict(type="str"),
    redact_values=dict(type="list", elements="str", default=[], no_log=True),
)


def _without_nulls(task_args):
    """A record field templated to null (``skip_reason`` of a decided record) counts as not given."""
    cleaned = dict(task_args)
    if isinstance(cleaned.get("records"), list):
        cleaned["records"] = [dict((key, value) for key, value in spec.items() if value is not None)
                              if isinstance(spec, dict) else spec for spec in cleaned["records"]]
    return cleaned


class ActionModule(ControllerAction):
    """Builds records on the controller; never connects to a host."""

    argument_spec = ARGUMENT_SPEC

    def run_on_controller(self, args, task_vars, result):
        records = []
        for index, spec in enumerate(args["records"]):
            try:
                record = make_record(spec["criterion"], spec["status"], spec["summary"], spec["evidence"],
                                     spec["blocking"], spec["duration_ms"], name=spec["name"],
                                     skip_reason=spec["skip_reason"])
            except ValueError as exc:
                result.update(failed=True, msg="records[%d]: %s" % (index, exc))
                return result
            records.append(redact(record, args["redact_values"]))
        result.update(changed=False, records=records)
        if args["host"]:
            result["results"] = [{"records": records, "host": args["host"]}]
        return result

    def validated_args(self):
        validation = ArgumentSpecValidator(ARGUMENT_SPEC).validate(_without_nulls(self._task.args))
        if validation.error_messages:
            raise AnsibleActionFail("check_record: %s" % "; ".join(validation.error_messages))
        return validation.validated_parameters

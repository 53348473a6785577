# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""check_inputs: a role's inputs (waivers, criterion lists, URLs, either-or settings) checked on the controller before
any check runs, every error naming the variable the user set (plugin_utils/input_checks.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible.errors import AnsibleError, AnsibleUndefinedVariable

from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils import input_checks
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils.controller_action import ControllerAction
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils.criteria_catalog import CatalogError, known_criteria
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils.decision import to_plain

ARGUMENT_SPEC = dict(
    waivers=dict(type="list", elements="str", default=[]),
    criteria=dict(type="list", elements="str", default=[]),
    urls=dict(type="list", elements="str", default=[]),
    one_of=dict(type="list", elements="list", default=[]),
    known_criteria=dict(type="list", elements="str", default=[]),
)

_UNDEFINED = object()


class ActionModule(ControllerAction):
    """Reads the named variables itself (to know which one the user set); never connects to a host."""

    argument_spec = ARGUMENT_SPEC

    def _read(self, variable, task_vars):
        """The variable's value, _UNDEFINED when neither it nor what it hands over to is set."""
        if variable not in task_vars:
            return _UNDEFINED
        try:
            return to_plain(self._templar.template(task_vars[variable]))
        except AnsibleUndefinedVariable:
            return _UNDEFINED

    def run_on_controller(self, args, task_vars, result):
        errors, notes = [], []

        checked = set()

        def named(variable):
            """(the name the user knows it by, its value or None, a reading error or None); a variable another one
            hands over to is read once, under its own name"""
            user_name = input_checks.user_variable(variable, task_vars)
            if user_name in checked:
                return user_name, None, None
            checked.add(user_name)
            try:
                value = self._read(variable, task_vars)
            except AnsibleError as exc:
                return user_name, None, "%s: cannot be read: %s" % (user_name, exc.message)
            return user_name, (None if value is _UNDEFINED else value), None

        try:
            known = set(known_criteria()) | set(args["known_criteria"])
        except CatalogError as exc:
            result.update(failed=True, msg="the inputs cannot be checked: %s" % exc, errors=[str(exc)])
            return result
        today = datetime.datetime.now(datetime.timezone.utc).date()

        for variable in args["waivers"]:
            user_name, value, problem = named(variable)
            found, expired = input_checks.check_waivers(value, user_name, known, today) if not problem else ([problem], [])
            errors.extend(found)
            notes.extend(expired)
        for variable in args["criteria"]:
            user_name, value, problem = named(variable)
            errors.extend([problem] if problem else input_checks.check_criteria(value, user_name, known))
        for variable in args["urls"]:
            user_name, value, problem = named(variable)
            errors.extend([problem] if problem else input_checks.check_url(value, user_name))
        for group in args["one_of"]:
            readings = [named(str(variable)) for variable in group]
            problems = [reading[2] for reading in readings if reading[2]]
            errors.extend(problems or input_checks.check_one_of([reading[1] for reading in readings],
                                                                [reading[0] for reading in readings]))

        result.update(changed=False, errors=errors, expired_waivers=notes)
        if notes:
            result["warnings"] = notes
        if errors:
            # The errors first: a report that shortens the message keeps the first one whole.
            result.update(failed=True, msg="%s (%s; nothing was checked)" % (
                "; ".join(errors), "an input is wrong" if len(errors) == 1 else "%d inputs are wrong" % len(errors)))
        else:
            result["msg"] = "the inputs are usable"
        return result

# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of the collection's controller-only actions (gate, check_record, record_rollup): they never connect
to a host, need no remote temporary directory, change nothing on a host (so check mode is safe) and validate
their options against one argument spec."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase


class ControllerAction(ActionBase):
    """Subclasses set ``argument_spec`` and implement ``run_on_controller(args, task_vars, result)``, which fills
    and returns ``result``; ``validated_args`` turns the task's options into validated parameters (a bad option
    fails the task with a message naming it)."""

    argument_spec = {}
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset()
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._VALID_ARGS = frozenset(cls.argument_spec)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ControllerAction, self).run(tmp, task_vars)
        del tmp  # no remote temporary directory: nothing runs on a host
        return self.run_on_controller(self.validated_args(), task_vars, result)

    def validated_args(self):
        dummy, args = self.validate_argument_spec(argument_spec=self.argument_spec)
        return args

    def run_on_controller(self, args, task_vars, result):
        raise NotImplementedError

# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark helper: prints each task's wall time at the end of a run (enable with
ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins ANSIBLE_CALLBACKS_ENABLED=task_timer)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: task_timer
type: aggregate
short_description: Prints the wall time of every task
description: Prints the wall time of every task at the end of the run, slowest first.
requirements:
  - enabled in the callbacks_enabled setting
"""

import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._started = time.monotonic()
        self._current = None
        self._times = []

    def _close(self):
        if self._current:
            name, start = self._current
            self._times.append((time.monotonic() - start, name))
            self._current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self._current = (task.get_name(), time.monotonic())

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats):
        self._close()
        total = time.monotonic() - self._started
        self._display.display("TASK TIMES (total %.2f s from callback load)" % total)
        for seconds, name in sorted(self._times, reverse=True):
            self._display.display("  %7.3f s  %s" % (seconds, name))

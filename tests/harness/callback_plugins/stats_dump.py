# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test helper of every ansible-playbook run the tests start (the gate tests, the fault matrix): at the end
of a run, write the custom stats (what set_stats publishes, and what AWX turns into job artifacts from
``stats.custom['_run']``) and the per-host summary to the file named by STATS_DUMP_FILE."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: stats_dump
type: aggregate
short_description: Write the run's custom stats to a JSON file (test helper)
description:
  - Writes C(stats.custom) and the per-host summary to the file named by the C(STATS_DUMP_FILE) environment variable.
requirements:
  - enable in configuration
"""

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "stats_dump"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("STATS_DUMP_FILE")
        if not path:
            return
        hosts = dict((host, stats.summarize(host)) for host in sorted(stats.processed))
        with open(path, "w") as handle:
            json.dump({"custom": stats.custom, "hosts": hosts}, handle, default=str, indent=2, sort_keys=True)

# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs basic_auth_endpoint with the controller's rate-limit ledger (plugin_utils/rate_ledger.py), so consecutive runs
share the service's request budget instead of overrunning its limit."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils.rate_ledger import LedgeredModuleAction


class ActionModule(LedgeredModuleAction):
    MODULE = "cleanwithsnapshot.release.basic_auth_endpoint"

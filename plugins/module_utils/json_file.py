# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The small JSON files the collection keeps on a host (a canary's state, a deploy lock)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json


def read_json(path):
    """The parsed content of ``path``, or None when there is no such file; an unreadable or invalid file raises
    OSError or ValueError (the caller names what to do: never read it as 'nothing there')."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None

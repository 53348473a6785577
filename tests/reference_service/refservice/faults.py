"""Runtime fault switches: a small JSON file in the state directory, re-read on every request.

The file maps a fault id to its parameters, e.g. {"slow": {"delay": 3}, "wrong_shape": {}}.
A missing or unreadable file means no fault.
"""
from __future__ import annotations

import json
import os

FAULTS_FILE = "faults.json"


def faults_path(state_dir):
    return os.path.join(state_dir, FAULTS_FILE) if state_dir else ""


def load_faults(state_dir):
    path = faults_path(state_dir)
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_faults(state_dir, faults):
    path = faults_path(state_dir)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(faults, handle, sort_keys=True)
    os.replace(tmp, path)

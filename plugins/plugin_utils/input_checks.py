# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A role's inputs checked before any check runs, each error naming the variable the user set.

A role option such as ``gate_waivers`` defaults to ``{{ release_waivers | default([]) }}``: the user sets
``release_waivers`` in the inventory and an error about ``gate_waivers`` (or a module's ``waivers``) leaves them to
guess. ``user_variable`` follows such plain hand-overs (``{{ name }}`` or ``{{ name | default(...) }}`` to another
``release_*``/``verify_*``/``gate_*`` variable) down to the one the user set; anything else (a lookup, an attribute,
a literal) is where the value was set. Controller-only, pure: the ``check_inputs`` action reads the variables and
calls these functions; the unit tests call them directly.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from urllib.parse import urlsplit

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import redact_text
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils import decision
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils.criteria_catalog import unknown_criterion

_HAND_OVER = re.compile(r"^\s*\{\{\s*((?:release|verify|gate)_[A-Za-z0-9_]*)\s*(?:\|\s*default\s*\(.*\))?\s*\}\}\s*$",
                        re.DOTALL)


def handed_over_from(raw):
    """The variable a raw value only hands over (``{{ release_x | default('') }}``), else None."""
    if not isinstance(raw, str):
        return None
    match = _HAND_OVER.match(raw)
    return match.group(1) if match else None


def user_variable(name, raw_vars):
    """The variable the user sets for role variable ``name``: follow plain hand-overs while they lead on (to a defined
    variable, or to an undefined one that is the inventory's name for it)."""
    seen = set([name])
    while True:
        source = handed_over_from(raw_vars.get(name))
        if source is None or source in seen:
            return name
        seen.add(source)
        name = source


def _where(variable, index=None, field=None):
    text = variable if index is None else "%s[%d]" % (variable, index)
    return text if field is None else "%s.%s" % (text, field)


def check_criteria(value, variable, known):
    """A list of criterion ids (advisory, required): each a known criterion."""
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        return ["%s: must be a list of criterion ids, got %s" % (variable, type(value).__name__)]
    errors = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            errors.append("%s: must be a criterion id, got %s" % (_where(variable, index), type(item).__name__))
            continue
        problem = unknown_criterion(item, known)
        if problem:
            errors.append("%s: %s" % (_where(variable, index), problem))
    return errors


def check_waivers(value, variable, known, today):
    """Waivers as the gate reads them (decision.parse_waivers), each naming a known criterion. Returns
    ``(errors, expired)``: an expired waiver is no error (the gate ignores it and says so) but the user hears of it."""
    if value is None or value == "":
        return [], []
    if not isinstance(value, list):
        return ["%s: must be a list of waivers ({criterion, reason, expires}), got %s"
                % (variable, type(value).__name__)], []
    dummy, expired, problems = decision.parse_waivers(value, today)
    # parse_waivers names its input "waivers"; the user knows it by the variable they set.
    errors = [re.sub(r"^waivers", variable, problem) for problem in problems]
    for index, waiver in enumerate(value):
        criterion = waiver.get("criterion") if isinstance(waiver, dict) else None
        if isinstance(criterion, str) and criterion:
            problem = unknown_criterion(criterion, known)
            if problem:
                errors.append("%s: %s" % (_where(variable, index, "criterion"), problem))
    notes = ["%s (%s) expired on %s: it waives nothing" % (_where(variable, w["index"]), w["criterion"], w["expires"])
             for w in expired]
    return errors, notes


def check_url(value, variable):
    """An http:// or https:// URL with a host (credentials, a port and an IPv6 literal are the URL's own business)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ["%s: not set (an http:// or https:// URL, like https://api.example.com)" % variable]
    if not isinstance(value, str) or not _is_http_url(value.strip()):
        return ["%s: %s is not an http:// or https:// URL with a host" % (variable, _shown(value))]
    return []


def _is_http_url(text):
    if any(char.isspace() for char in text):
        return False
    try:
        parts = urlsplit(text)
        parts.port  # pylint: disable=pointless-statement  # raises ValueError on a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def check_one_of(values, variables):
    """At least one of ``variables`` (their ``values``, in the same order) set."""
    if any(value not in (None, "", [], {}) for value in values):
        return []
    return ["%s: none is set; one of them must be" % " or ".join(variables)]


def _shown(value, limit=60):
    # A URL may carry credentials: masked before it is shown.
    text = redact_text(repr(value) if not isinstance(value, str) else "'%s'" % value)
    return text if len(text) <= limit else text[:limit - 3] + "..."

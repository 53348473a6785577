# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redaction shared by every module: secrets never leave a module in any field."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

MASK = "********"

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]*)@")
_KEYWORD_PASSWORD = re.compile(r"(?P<key>\w*password\s*=\s*)(?P<q>'?)(?P<value>(?:[^'\s]|\\')*)(?P=q)", re.IGNORECASE)
SENSITIVE_KEY = re.compile(r"(pass(word|wd)?|secret|token|authorization|cookie|api[_-]?key|dsn|credential)", re.IGNORECASE)


def redact_text(text, secrets=()):
    """Mask URL credentials, ``password=...`` keywords and every given secret value in ``text``."""
    if text is None:
        return text
    text = str(text)
    text = _URL_CREDENTIALS.sub(lambda m: "%s%s:%s@" % (m.group("scheme"), m.group("user"), MASK), text)
    text = _KEYWORD_PASSWORD.sub(lambda m: "%s%s%s%s" % (m.group("key"), m.group("q"), MASK, m.group("q")), text)
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(str(secret), MASK)
    return text


def redact(value, secrets=()):
    """Deep copy of ``value`` with secrets masked in every string and every sensitive key's value."""
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if isinstance(key, str) and SENSITIVE_KEY.search(key) and isinstance(item, (str, bytes)) and item:
                result[key] = MASK
            else:
                result[key] = redact(item, secrets)
        return result
    if isinstance(value, (list, tuple)):
        return [redact(item, secrets) for item in value]
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"), secrets)
    if isinstance(value, str):
        return redact_text(value, secrets)
    return value

# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The env file as docker compose reads it (``KEY=VALUE`` lines, quotes, escapes, ``${VAR:-default}``
expansion), and the boolean and list settings as the application reads them. Errors name a line
number, never its content."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

MAX_BYTES = 4 * 1024 * 1024
KEY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_EXPAND = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_TRUE = frozenset(("1", "true", "yes", "on", "y", "t"))
_FALSE = frozenset(("0", "false", "no", "off", "n", "f"))


class EnvFileError(Exception):
    """The env file cannot be used; the message names a line number, never its content."""


def _expand(value, known):
    def repl(match):
        name = match.group("braced") or match.group("bare")
        current = known.get(name.upper())
        op = match.group("op")
        if op == ":-" and not current:
            return match.group("default") or ""
        if op == "-" and current is None:
            return match.group("default") or ""
        return current or ""
    return _EXPAND.sub(repl, value)


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "$": "\x00DOLLAR\x00"}


def parse_env(text):
    """Parse env-file text. Returns ``(values, notes)``: values keyed by upper-cased key (the last
    assignment wins), notes about lines that assign nothing. Raises EnvFileError on a line docker
    compose refuses (an unterminated quote, an invalid key)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    values, notes = {}, []
    pos, line_no, length = 0, 1, len(text)
    while pos < length:
        end = text.find("\n", pos)
        end = length if end < 0 else end
        line = text[pos:end]
        start_line = line_no
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            pos, line_no = end + 1, line_no + 1
            continue
        body = stripped
        if body.startswith("export ") or body.startswith("export\t"):
            body = body[7:].lstrip()
        if "=" not in body:
            if not KEY_NAME.match(body):
                raise EnvFileError("line %d: not a KEY=VALUE assignment" % start_line)
            notes.append("line %d: %s has no value in the file (taken from the environment by compose)" % (start_line, body.upper()))
            pos, line_no = end + 1, line_no + 1
            continue
        key, raw = body.split("=", 1)
        key = key.strip()
        if not KEY_NAME.match(key):
            raise EnvFileError("line %d: invalid key name" % start_line)
        raw = raw.lstrip(" \t")
        # Position of the value in the whole text (for quoted values that span lines); the first
        # "=" of the line is the assignment's, a key cannot hold one.
        value_start = pos + line.index("=") + 1
        while value_start < length and text[value_start] in " \t":
            value_start += 1
        if raw[:1] in ("'", '"'):
            quote = raw[0]
            cursor = value_start + 1
            chunks = []
            while True:
                if cursor >= length:
                    raise EnvFileError("line %d: unterminated %s quote" % (start_line, "single" if quote == "'" else "double"))
                char = text[cursor]
                if quote == '"' and char == "\\" and cursor + 1 < length:
                    nxt = text[cursor + 1]
                    chunks.append(_ESCAPES.get(nxt, "\\" + nxt))
                    cursor += 2
                    continue
                if char == quote:
                    break
                chunks.append(char)
                cursor += 1
            value = "".join(chunks)
            if quote == '"':
                value = _expand(value, values).replace("\x00DOLLAR\x00", "$")
            line_no += text.count("\n", value_start, cursor)
            rest_end = text.find("\n", cursor)
            rest_end = length if rest_end < 0 else rest_end
            rest = text[cursor + 1:rest_end].strip()
            if rest and not rest.startswith("#"):
                raise EnvFileError("line %d: unexpected characters after the closing quote" % line_no)
            values[key.upper()] = value
            pos, line_no = rest_end + 1, line_no + 1
            continue
        comment = re.search(r"\s#", raw)
        if comment:
            raw = raw[:comment.start()]
        values[key.upper()] = _expand(raw.strip(), values)
        pos, line_no = end + 1, line_no + 1
    return values, notes


def to_bool(value):
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def parse_list(value):
    """A list setting as the application reads it: a JSON array, or comma-separated."""
    text = (value or "").strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            return None
        if isinstance(parsed, list):
            return [str(item).strip() for item in parsed if str(item).strip()]
        return [str(parsed).strip()]
    return [item.strip() for item in text.split(",") if item.strip()]

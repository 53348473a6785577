# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redaction shared by every module: secrets never leave a module in any field."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import re
import threading
import urllib.parse

from ansible.module_utils.common.text.converters import to_bytes, to_text

MASK = "********"

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@/\s]*)@")
_KEYWORD_PASSWORD = re.compile(r"(?P<key>\w*password\s*=\s*)(?P<q>'?)(?P<value>(?:[^'\s]|\\')*)(?P=q)", re.IGNORECASE)
# A credential quoted in free text (an error, a command's output): "Authorization: Basic ...", "Bearer ...".
# Eight token characters at least, so prose such as "the bearer token is missing" stays readable.
_CREDENTIAL_IN_TEXT = re.compile(r"(?P<key>\b(?:(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:\w+\s+)?|bearer\s+))"
                                 r"(?P<value>[A-Za-z0-9._~+/-]{8,}=*)", re.IGNORECASE)
SENSITIVE_KEY = re.compile(r"(pass(word|wd)?|secret|token|authorization|cookie|api[_-]?key|dsn|credential)", re.IGNORECASE)
# A setting of an env file is a secret on a wider test: any name with "key" or "auth" in it as well (R2_ACCESS_KEY,
# BASIC_AUTH_HASH), so a rule on such a setting never shows the value it expects.
SENSITIVE_SETTING = re.compile(r"(%s|key|auth)" % SENSITIVE_KEY.pattern, re.IGNORECASE)


def redact_text(text, secrets=()):
    """Mask URL credentials, ``password=...`` keywords, quoted Authorization/Bearer credentials and every
    given secret value in ``text``."""
    if text is None:
        return text
    text = str(text)
    text = _URL_CREDENTIALS.sub(lambda m: "%s%s:%s@" % (m.group("scheme"), m.group("user"), MASK), text)
    text = _KEYWORD_PASSWORD.sub(lambda m: "%s%s%s%s" % (m.group("key"), m.group("q"), MASK, m.group("q")), text)
    text = _CREDENTIAL_IN_TEXT.sub(lambda m: m.group("key") + MASK, text)
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


# Header names whose values are credentials, on top of redaction.SENSITIVE_KEY.
_SENSITIVE_HEADER = re.compile(r"^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|x-auth-token|"
                               r"x-proxy-auth.*|x-.*-(secret|signature|token))$", re.IGNORECASE)
_BEARER = re.compile(r"^\s*(bearer|basic|token|digest)\s+(?P<value>\S+)\s*$", re.IGNORECASE)


def basic_auth_header(username, password):
    """The value of a Basic-Auth ``Authorization`` header, ``Basic base64(user:password)`` (text)."""
    if password is None:
        password = ""
    raw = to_bytes("%s:%s" % (username, password), errors="surrogate_or_strict")
    return "Basic %s" % to_text(base64.b64encode(raw))


def is_sensitive_header(name):
    name = to_text(name or "")
    return bool(_SENSITIVE_HEADER.match(name) or SENSITIVE_KEY.search(name))


class Secrets:
    """Every secret value a module was given, collected once, masked everywhere.

    ``register(module)`` adds them to the module's no-log values, so Ansible also masks them in
    ``invocation`` and in every message; ``text()``/``value()`` mask them in records and messages the
    module builds itself (plus URL credentials and sensitive query parameters)."""

    def __init__(self):
        self.values = set()
        self._lock = threading.Lock()

    def add(self, value):
        if value is None or isinstance(value, bool):
            return
        value = to_text(value)
        if not value:
            return
        with self._lock:
            self.values.add(value)
            quoted = urllib.parse.quote(value, safe="")
            if quoted != value:
                self.values.add(quoted)

    def add_basic(self, username, password):
        """A Basic-Auth pair: the password, and the header value that encodes it."""
        if not password:
            return
        self.add(password)
        header = to_text(basic_auth_header(username or "", password))
        self.add(header)
        self.add(header.split(" ", 1)[1])

    def add_header_value(self, name, value):
        if value is None or not is_sensitive_header(name):
            return
        value = to_text(value)
        self.add(value)
        match = _BEARER.match(value)
        if match:
            self.add(match.group("value"))
            if match.group(1).lower() == "basic":
                try:
                    decoded = to_text(base64.b64decode(match.group("value")))
                except (ValueError, TypeError):
                    decoded = ""
                if ":" in decoded:
                    self.add(decoded)
                    self.add(decoded.split(":", 1)[1])

    def add_headers(self, headers):
        for name, value in (headers or {}).items():
            self.add_header_value(name, value)

    def add_url(self, url):
        """Credentials in ``scheme://user:pass@host`` and values of sensitive query parameters."""
        if not url:
            return
        try:
            parts = urllib.parse.urlsplit(to_text(url))
        except ValueError:
            return
        if parts.password:
            self.add(parts.password)
            self.add_basic(urllib.parse.unquote(parts.username or ""), urllib.parse.unquote(parts.password))
        for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=False):
            if SENSITIVE_KEY.search(key):
                self.add(value)

    def snapshot(self):
        """The values collected so far, longest first (a copy: other threads may go on adding)."""
        with self._lock:
            values = list(self.values)
        return sorted(values, key=len, reverse=True)

    def register(self, module):
        """Hand the secrets to Ansible's own output masking (invocation, warnings, messages)."""
        module.no_log_values.update(self.snapshot())

    def text(self, text):
        if text is None:
            return None
        return mask_url_secrets(redact_text(text, self.snapshot()))

    def value(self, value):
        masked = redact(value, self.snapshot())
        return _mask_urls_deep(masked)


_URL_IN_TEXT = re.compile(r"https?://[^\s'\"<>]+")


def mask_url_secrets(text):
    """Mask ``user:pass@`` and sensitive query values of every http(s) URL in ``text``."""
    if not text:
        return text

    def _one(match):
        url = match.group(0)
        stripped = url.rstrip(".,;:)]}")
        return safe_url(stripped) + url[len(stripped):]
    return _URL_IN_TEXT.sub(_one, text)


def _mask_urls_deep(value):
    if isinstance(value, dict):
        return dict((key, _mask_urls_deep(item)) for key, item in value.items())
    if isinstance(value, list):
        return [_mask_urls_deep(item) for item in value]
    if isinstance(value, str) and "://" in value:
        return mask_url_secrets(value)
    return value


def safe_url(url):
    """``url`` without its password and with sensitive query values masked."""
    if not url:
        return url
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = "%s:%s@%s" % (user, MASK, hostport) if ":" in userinfo else "%s@%s" % (user, hostport)
    query = parts.query
    if query:
        pairs = []
        for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
            pairs.append((key, MASK if SENSITIVE_KEY.search(key) and value else value))
        query = urllib.parse.urlencode(pairs, safe="*")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def safe_headers(headers):
    return dict((name, MASK if is_sensitive_header(name) and value else value) for name, value in (headers or {}).items())

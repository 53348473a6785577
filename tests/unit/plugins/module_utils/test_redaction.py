from __future__ import annotations

import base64

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import (
    MASK,
    Secrets,
    redact,
    redact_text,
    safe_headers,
    safe_url,
)

CANARY = "canary-Zq81-secret"


def test_url_credentials_are_masked():
    text = "could not connect to postgresql+psycopg://app:%s@db:5432/cws" % CANARY
    assert CANARY not in redact_text(text)
    assert "postgresql+psycopg://app:%s@db:5432/cws" % MASK in redact_text(text)


def test_keyword_password_is_masked():
    assert CANARY not in redact_text("host=db password=%s dbname=x" % CANARY)
    assert CANARY not in redact_text("host=db password='%s' dbname=x" % CANARY)


def test_credentials_quoted_in_free_text_are_masked():
    token = base64.b64encode(("ops:%s" % CANARY).encode()).decode()
    for text in ("curl: -H 'Authorization: Basic %s' failed" % token,
                 "request headers {'authorization': 'Bearer %s'}" % CANARY,
                 "Proxy-Authorization=Digest %s" % CANARY,
                 "sent bearer %s to /metrics" % CANARY):
        masked = redact_text(text)
        assert CANARY not in masked and token not in masked and MASK in masked, masked
    # Prose about credentials is left readable.
    for text in ("/metrics answered 401: the bearer token is missing or wrong",
                 "the Authorization header is required", 'WWW-Authenticate: Basic realm="ops"'):
        assert redact_text(text) == text


def test_given_secrets_are_masked_longest_first():
    text = "token abc and abcdef"
    assert redact_text(text, ["abc", "abcdef"]) == "token %s and %s" % (MASK, MASK)


def test_redact_walks_structures_and_sensitive_keys():
    value = {
        "headers": {"Authorization": "Basic dXNlcjpwYXNz", "Accept": "application/json"},
        "items": ["ok", "the secret is %s" % CANARY, b"bytes " + CANARY.encode()],
        "login_password": "anything",
        "count": 3,
    }
    result = redact(value, [CANARY])
    assert result["headers"]["Authorization"] == MASK
    assert result["headers"]["Accept"] == "application/json"
    assert result["login_password"] == MASK
    assert result["count"] == 3
    assert CANARY not in repr(result)


def test_redact_text_none():
    assert redact_text(None) is None


def test_prefixed_password_keywords_are_masked():
    for key in ("login_password", "db_password", "PASSWORD"):
        assert CANARY not in redact_text("%s=%s other=1" % (key, CANARY))


def test_secrets_mask_basic_auth_in_every_form():
    secrets = Secrets()
    secrets.add_basic("ops-admin", CANARY)
    header = "Basic " + base64.b64encode(("ops-admin:%s" % CANARY).encode()).decode()
    text = "sent %s with %s and %s" % (header, CANARY, header.split()[1])
    masked = secrets.text(text)
    assert CANARY not in masked and header.split()[1] not in masked
    assert masked.count(MASK) >= 2


def test_secrets_from_headers_urls_and_query():
    secrets = Secrets()
    secrets.add_headers({"Authorization": "Bearer %s" % CANARY, "X-Auth-MFA": "true", "Cookie": "s=%s" % CANARY})
    secrets.add_url("https://user:%s@api.example.com/x?token=%s2&limit=1" % (CANARY, CANARY))
    assert "true" not in secrets.values
    record = {"evidence": {"url": "https://user:%s@api.example.com/x?token=%s2&limit=1" % (CANARY, CANARY),
                           "note": "got %s" % CANARY, "headers": {"Authorization": "Bearer x"}}}
    masked = secrets.value(record)
    assert CANARY not in repr(masked)
    assert masked["evidence"]["url"] == "https://user:%s@api.example.com/x?token=%s&limit=1" % (MASK, MASK)
    assert masked["evidence"]["headers"]["Authorization"] == MASK


def test_safe_url_and_safe_headers():
    assert safe_url("http://u:p4ss@h:8000/a?api_key=zz&b=1") == "http://u:%s@h:8000/a?api_key=%s&b=1" % (MASK, MASK)
    assert safe_url("http://h/a?limit=1") == "http://h/a?limit=1"
    assert safe_headers({"Authorization": "Basic x", "X-Auth-MFA": "true"}) == {"Authorization": MASK, "X-Auth-MFA": "true"}


class _GuardedSet(set):
    """A set that refuses to be changed or read while its owner's lock is free."""

    def __init__(self, lock):
        super().__init__()
        self._guard = lock

    def add(self, value):
        assert self._guard.locked(), "Secrets.values changed without the lock"
        super().add(value)

    def __iter__(self):
        assert self._guard.locked(), "Secrets.values read without the lock"
        return super().__iter__()


def test_secrets_are_changed_and_read_only_under_their_lock():
    """Every change and every read of the collected values holds the lock (a reader iterating the set while a thread
    adds would raise "Set changed size during iteration"); checked on each access, so it fails without the lock."""
    secrets = Secrets()
    secrets.values = _GuardedSet(secrets._lock)
    secrets.add("a b")
    secrets.add_basic("ops", "pw")
    assert secrets.text("x a b y") == "x %s y" % MASK
    assert secrets.value({"n": "pw"}) == {"n": MASK}
    assert set(secrets.snapshot()) >= {"a b", "a%20b", "pw"}

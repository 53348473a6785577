from __future__ import annotations

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import MASK, redact, redact_text

CANARY = "canary-Zq81-secret"


def test_url_credentials_are_masked():
    text = "could not connect to postgresql+psycopg://app:%s@db:5432/cws" % CANARY
    assert CANARY not in redact_text(text)
    assert "postgresql+psycopg://app:%s@db:5432/cws" % MASK in redact_text(text)


def test_keyword_password_is_masked():
    assert CANARY not in redact_text("host=db password=%s dbname=x" % CANARY)
    assert CANARY not in redact_text("host=db password='%s' dbname=x" % CANARY)


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

"""The TLS inspector: certificate parsing without a third-party library, hostname matching, handshake errors."""
from __future__ import annotations

import datetime
import subprocess

import pytest

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_errors import TransportError
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.tls import hostname_matches, inspect_tls, parse_certificate


def _make_cert(tmp_path, cn, days, sans):
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", str(days), "-subj", "/CN=%s" % cn, "-addext", "subjectAltName=%s" % sans],
                   check=True, capture_output=True)
    der = subprocess.run(["openssl", "x509", "-in", str(crt), "-outform", "DER"], check=True, capture_output=True).stdout
    return der


def test_parse_certificate_reads_validity_names_and_self_issued(tmp_path):
    der = _make_cert(tmp_path, "api.example.test", 30, "DNS:api.example.test,DNS:*.example.test,IP:127.0.0.1")
    cert = parse_certificate(der)
    assert cert["subject_cn"] == "api.example.test"
    assert cert["issuer_cn"] == "api.example.test"
    assert cert["self_issued"] is True
    assert cert["subject_alt_names"] == ["api.example.test", "*.example.test", "127.0.0.1"]
    days = (cert["not_after"] - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 86400
    assert 29 < days <= 30


def test_hostname_matching():
    assert hostname_matches("api.example.test", ["api.example.test"])
    assert hostname_matches("a.example.test", ["*.example.test"])
    assert not hostname_matches("a.b.example.test", ["*.example.test"])
    assert not hostname_matches("other.test", ["api.example.test"])


def test_inspect_tls_on_a_plain_http_port_is_a_transport_error(server):
    with pytest.raises(TransportError) as raised:
        inspect_tls("127.0.0.1", server.port, timeout=2)
    assert raised.value.kind in ("tls", "reset", "protocol", "network")


def test_inspect_tls_refused(closed_port):
    with pytest.raises(TransportError) as raised:
        inspect_tls("127.0.0.1", closed_port, timeout=2)
    assert raised.value.kind == "refused"

"""TLS probes against real TLS servers on loopback with certificates made by the openssl CLI: valid via
a CA, self-signed, wrong host name, expiring soon; HTTPS requests with a CA file and a client
certificate; HSTS required on https only."""
from __future__ import annotations


import pytest

pytestmark = pytest.mark.integration


def tls_probe(url, **extra):
    probe = {"kind": "tls", "url": url + "/"}
    probe.update(extra)
    return probe


def one(module_runner, probes, **args):
    payload = {"probes": probes, "retries": 0, "deadline": 20}
    payload.update(args)
    result = module_runner("readiness_probe", payload)
    assert "Traceback" not in result.raw
    return result["records"][0] if len(result["records"]) == 1 else result["records"]


def failed_paths(record):
    return [item["path"] for item in record["evidence"]["failed"]]


def test_certificate_valid_via_the_given_ca(module_runner, tls_material, tls_servers):
    url = tls_servers.start(tls_material["valid"])
    record = one(module_runner, [tls_probe(url, ca_path=tls_material["ca"])])
    assert record["status"] == "pass", record["summary"]
    assert record["criterion"] == "tls.certificate"
    certificate = record["evidence"]["certificate"]
    assert certificate["verified"] is True and certificate["hostname_match"] is True
    assert certificate["issuer_cn"] == "Release Gate Test CA"
    assert 88 < certificate["days_to_expiry"] <= 90


def test_certificate_from_an_unknown_ca_fails(module_runner, tls_material, tls_servers):
    url = tls_servers.start(tls_material["valid"])
    record = one(module_runner, [tls_probe(url)])
    assert record["status"] == "fail"
    assert "certificate.verified" in failed_paths(record)
    assert "unable to get local issuer certificate" in record["evidence"]["certificate"]["verify_error"]


def test_self_signed_certificate_fails_unless_it_is_the_given_ca(module_runner, tls_material, tls_servers):
    url = tls_servers.start(tls_material["self_signed"])
    record = one(module_runner, [tls_probe(url)])
    assert record["status"] == "fail"
    assert {"certificate.verified", "certificate.self_signed"} <= set(failed_paths(record))
    assert record["evidence"]["certificate"]["self_signed"] is True
    assert "self-signed" in record["evidence"]["certificate"]["verify_error"]
    pinned = one(module_runner, [tls_probe(url, ca_path=tls_material["self_signed"][0])])
    assert pinned["status"] == "pass", pinned["summary"]


def test_wrong_host_name_fails(module_runner, tls_material, tls_servers):
    url = tls_servers.start(tls_material["wrong_host"])
    record = one(module_runner, [tls_probe(url, ca_path=tls_material["ca"])])
    assert record["status"] == "fail"
    assert "certificate.hostname_match" in failed_paths(record)
    assert record["evidence"]["certificate"]["subject_alt_names"] == ["other.example.test"]
    renamed = one(module_runner, [tls_probe(url, ca_path=tls_material["ca"], server_hostname="other.example.test")])
    assert renamed["status"] == "pass", renamed["summary"]


def test_certificate_expiring_soon_fails(module_runner, tls_material, tls_servers):
    url = tls_servers.start(tls_material["expiring"])
    record = one(module_runner, [tls_probe(url, ca_path=tls_material["ca"], min_days_valid=14)])
    assert record["status"] == "fail"
    assert failed_paths(record) == ["certificate.days_to_expiry"]
    assert record["evidence"]["failed"][0]["actual"] <= 3
    relaxed = one(module_runner, [tls_probe(url, ca_path=tls_material["ca"], min_days_valid=2)])
    assert relaxed["status"] == "pass"


def test_tls_probe_on_a_closed_port_is_an_error(module_runner, closed_port):
    port = closed_port
    record = one(module_runner, [tls_probe("https://127.0.0.1:%d" % port)])
    assert record["status"] == "error"
    assert "connection refused" in record["summary"]


def test_https_probe_with_ca_and_client_certificate(module_runner, tls_material, tls_servers):
    url = tls_servers.start(tls_material["valid"], client_ca=tls_material["ca"])
    cert, key = tls_material["client"]
    record = one(module_runner, [{"kind": "healthz", "url": url + "/healthz", "ca_path": tls_material["ca"],
                                  "client_cert": cert, "client_key": key}])
    assert record["status"] == "pass", record["summary"]
    refused = one(module_runner, [{"kind": "healthz", "url": url + "/healthz", "ca_path": tls_material["ca"]}])
    assert refused["status"] == "error"
    unverified = one(module_runner, [{"kind": "healthz", "url": url + "/healthz"}])
    assert unverified["status"] == "error"
    assert "certificate verify failed" in unverified["summary"]


def test_module_level_tls_options_apply_to_every_probe(module_runner, tls_material, tls_servers):
    url = tls_servers.start(tls_material["valid"])
    records = one(module_runner, [{"kind": "healthz"}, tls_probe(url)], base_url=url, ca_path=tls_material["ca"])
    assert [r["status"] for r in records] == ["pass", "pass"]


def test_hsts_is_required_on_https(module_runner, tls_material, tls_servers):
    headers = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
    without = tls_servers.start(tls_material["valid"], headers=headers)
    record = one(module_runner, [{"kind": "security_headers", "url": without + "/healthz", "ca_path": tls_material["ca"]}])
    assert record["status"] == "fail"
    assert failed_paths(record) == ["header:Strict-Transport-Security"]
    with_hsts = tls_servers.start(tls_material["valid"], headers=dict(headers, **{
        "Strict-Transport-Security": "max-age=31536000; includeSubDomains"}))
    record = one(module_runner, [{"kind": "security_headers", "url": with_hsts + "/healthz", "ca_path": tls_material["ca"]}])
    assert record["status"] == "pass", record["summary"]
    opted_out = one(module_runner, [{"kind": "security_headers", "url": without + "/healthz", "hsts": False,
                                     "ca_path": tls_material["ca"]}])
    assert opted_out["status"] == "pass"

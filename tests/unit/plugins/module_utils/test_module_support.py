"""Module plumbing of the HTTP check modules: the common options' checks name the option, URL joining, and the module
class that masks every secret it is given, also in a validation error and in the invocation line it logs."""
from __future__ import annotations

import json

import pytest
from ansible.module_utils import basic

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.module_support import (
    SecretAwareModule,
    http_params_error,
    join_url,
)

CANARY = "canary-Pw-9f3k2"


@pytest.mark.parametrize("params, needle", [
    ({"timeout": -1}, "timeout must be greater than 0"),
    ({"timeout": 0}, "timeout must be greater than 0"),
    ({"deadline": 0}, "deadline must be greater than 0"),
    ({"connect_timeout": -2}, "connect_timeout"),
    ({"retries": -1}, "retries must be 0 or more"),
    ({"concurrency": 0}, "concurrency must be 1 or more"),
    ({"client_key": "/k.pem"}, "client_key needs client_cert"),
    ({"base_url": "ftp://host/"}, "base_url: 'ftp://host/' is not an http:// or https:// URL"),
    ({"base_url": "http://"}, "base_url: 'http://' has no host"),
    ({"base_url": "http://h:99999/"}, "base_url"),
    ({"base_url": "http://u:%s@:80/" % CANARY}, "base_url"),
])
def test_http_params_errors_name_the_option(params, needle):
    base = {"timeout": 10, "deadline": 60, "retries": 3, "backoff": 0.5, "backoff_max": 10, "concurrency": 8}
    base.update(params)
    message = http_params_error(base)
    assert message and needle in message
    assert CANARY not in message


def test_join_url():
    assert join_url("http://h:1/", "/healthz") == "http://h:1/healthz"
    assert join_url("http://h:1/api", "v1/x?a=1") == "http://h:1/api/v1/x?a=1"
    assert join_url("http://h:1", "https://other/") == "https://other/"


def _module_args(monkeypatch, args):
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode())
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")


def _collect_header_values(params, secrets):
    secrets.add_headers(params.get("headers") or {})


SPEC = dict(headers=dict(type="dict", default={}), count=dict(type="int", default=1))


def test_secrets_are_masked_in_the_invocation_line_the_module_logs(monkeypatch):
    _module_args(monkeypatch, {"headers": {"Authorization": "Bearer %s" % CANARY}, "count": 2})
    logged = []
    monkeypatch.setattr(basic.AnsibleModule, "log", lambda self, msg, log_args=None: logged.append((msg, log_args)))
    module = SecretAwareModule(argument_spec=SPEC, secret_collector=_collect_header_values)
    assert CANARY in module.params["headers"]["Authorization"]
    assert CANARY in module.no_log_values
    assert logged and "Invoked with" in logged[0][0]
    assert CANARY not in repr(logged)


def test_secrets_are_masked_in_a_validation_error(monkeypatch):
    """The validation error's invocation holds the raw parameters: the collector has run before it is printed."""
    _module_args(monkeypatch, {"headers": {"X-Api-Key": CANARY}, "count": "many"})
    failed = []

    def fail_json(self, msg, **kwargs):
        failed.append((msg, set(self.no_log_values)))
        raise SystemExit(1)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    with pytest.raises(SystemExit):
        SecretAwareModule(argument_spec=SPEC, secret_collector=_collect_header_values)
    assert "count" in failed[0][0]
    assert CANARY in failed[0][1]


def test_a_validation_error_of_a_module_run_shows_no_secret(module_runner):
    result = module_runner("readiness_probe", {"base_url": "http://127.0.0.1:9/", "bogus_option": 1,
                                               "probes": [{"name": "x", "kind": "custom", "path": "/x",
                                                           "headers": {"X-Api-Key": CANARY}}]})
    assert result.get("failed") and "bogus_option" in result["msg"]
    assert CANARY not in result.raw

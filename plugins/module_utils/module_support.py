# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module plumbing shared by the HTTP check modules: argument spec pieces, their checks, URL helpers and the
module class that collects every secret it is given."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import urllib.parse

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.rate_budget import rate_limit_argument_spec, rate_limit_problem
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import Secrets, basic_auth_header, safe_url
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.waiter import RetryPolicy


def api_connection_argument_spec():
    """The options of a connection to a monitoring API (Prometheus, Alertmanager): its URL, a bearer token or Basic
    Auth, TLS and a timeout. Use with API_CONNECTION_CONSTRAINTS."""
    return dict(
        url=dict(type="str", required=True),
        bearer_token=dict(type="str", no_log=True),
        url_username=dict(type="str"),
        url_password=dict(type="str", no_log=True),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        timeout=dict(type="float", default=10.0),
    )


API_CONNECTION_CONSTRAINTS = dict(mutually_exclusive=[["bearer_token", "url_username"]],
                                  required_by={"url_password": "url_username"})


def api_auth_headers(options):
    """The Authorization header of api_connection_argument_spec's options (a bearer token, else Basic Auth)."""
    if options.get("bearer_token"):
        return {"Authorization": "Bearer %s" % options["bearer_token"]}
    if options.get("url_username"):
        return {"Authorization": basic_auth_header(options["url_username"], options.get("url_password"))}
    return {}


def collect_api_secrets(options, secrets):
    """The secrets of api_connection_argument_spec's options: URL credentials, the token, the password, and the
    Authorization values made of them."""
    secrets.add_url(options.get("url"))
    if options.get("bearer_token"):
        secrets.add(options["bearer_token"])
        secrets.add("Bearer %s" % options["bearer_token"])
    if options.get("url_password"):
        secrets.add_basic(options.get("url_username") or "", options["url_password"])


def http_common_argument_spec():
    """The connection options documented once in the cleanwithsnapshot.release.http doc fragment."""
    return dict(
        base_url=dict(type="str"),
        timeout=dict(type="float", default=10.0),
        connect_timeout=dict(type="float"),
        deadline=dict(type="float", default=60.0),
        retries=dict(type="int", default=3),
        backoff=dict(type="float", default=0.5),
        backoff_max=dict(type="float", default=10.0),
        concurrency=dict(type="int", default=8),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        client_cert=dict(type="path"),
        client_key=dict(type="path"),
        use_proxy=dict(type="bool", default=True),
        rate_limit=dict(type="dict", options=rate_limit_argument_spec(), default={}),
    )


def http_params_error(params):
    """The first problem with the common HTTP options, as a message naming the option, or None."""
    for name in ("timeout", "deadline"):
        if params.get(name) is not None and not params[name] > 0:
            return "%s must be greater than 0, got %s" % (name, params[name])
    if params.get("connect_timeout") is not None and not params["connect_timeout"] > 0:
        return "connect_timeout must be greater than 0, got %s" % params["connect_timeout"]
    for name in ("retries", "backoff", "backoff_max"):
        if params.get(name) is not None and params[name] < 0:
            return "%s must be 0 or more, got %s" % (name, params[name])
    if params.get("concurrency") is not None and params["concurrency"] < 1:
        return "concurrency must be 1 or more, got %s" % params["concurrency"]
    if params.get("client_key") and not params.get("client_cert"):
        return "client_key needs client_cert"
    if params.get("base_url"):
        problem = url_error(params["base_url"])
        if problem:
            return "base_url: %s" % problem
    if params.get("rate_limit"):
        return rate_limit_problem(params["rate_limit"])
    return None


def url_error(url):
    """Why ``url`` is not a usable absolute http(s) URL, or None."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return "%s is not a valid URL (%s)" % (safe_url_or_mask(url), to_native(exc))
    if parts.scheme.lower() not in ("http", "https"):
        return "%s is not an http:// or https:// URL" % safe_url_or_mask(url)
    if not parts.hostname:
        return "%s has no host" % safe_url_or_mask(url)
    if port is not None and not 0 < port < 65536:
        return "%s has an invalid port" % safe_url_or_mask(url)
    if re.search(r"\s", url):
        return "%s contains white space" % safe_url_or_mask(url)
    return None


def safe_url_or_mask(url):
    try:
        return "'%s'" % safe_url(url)
    except Exception:  # pylint: disable=broad-except
        return "(unparseable URL)"


def join_url(base_url, path_or_url):
    """An absolute URL from a base and a path (a full http(s) URL is taken as it is)."""
    if not path_or_url:
        return base_url
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", path_or_url):
        return path_or_url
    if not base_url:
        return path_or_url
    return base_url.rstrip("/") + "/" + path_or_url.lstrip("/")


def retry_policy_from(params):
    return RetryPolicy(retries=params.get("retries", 3), backoff=params.get("backoff", 0.5),
                       backoff_max=params.get("backoff_max", 10.0))


class SecretAwareModule(AnsibleModule):
    """An AnsibleModule that learns the secrets hidden inside free-form options (header values, passwords in dicts
    of roles, URL credentials) and adds them to ``no_log_values``, so Ansible masks them in ``invocation``, in every
    message and in the module's syslog line.

    ``secret_collector(params, secrets)`` fills a Secrets object from the parameters. It runs after construction on
    the validated parameters (aliases and defaults applied), and also from the two public methods AnsibleModule
    itself calls while it is being constructed: ``fail_json`` (a validation error, whose ``invocation`` holds the raw
    parameters) and ``log`` (the invocation line written once validation passed)."""

    def __init__(self, *args, **kwargs):
        self._secret_collector = kwargs.pop("secret_collector")
        self.secrets = Secrets()
        super(SecretAwareModule, self).__init__(*args, **kwargs)
        self._collect_secrets()

    def _collect_secrets(self):
        try:
            self._secret_collector(getattr(self, "params", None) or {}, self.secrets)
        except Exception:  # pylint: disable=broad-except
            # Malformed input is reported by validation; collecting stays best effort here.
            pass
        self.secrets.register(self)

    def log(self, msg, log_args=None):
        self._collect_secrets()
        msg = remove_values(msg, self.no_log_values)
        if log_args:
            log_args = remove_values(log_args, self.no_log_values)
        super(SecretAwareModule, self).log(msg, log_args=log_args)

    def fail_json(self, msg, **kwargs):
        self._collect_secrets()
        super(SecretAwareModule, self).fail_json(msg, **kwargs)

    def fail_redacted(self, msg, **kwargs):
        self._collect_secrets()
        self.fail_json(msg=self.secrets.text(msg), **self.secrets.value(kwargs))


def collect_common_secrets(params, secrets):
    """Secrets in the options every HTTP check module shares."""
    secrets.add_url(params.get("base_url"))

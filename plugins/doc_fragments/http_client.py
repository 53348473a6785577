# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  base_url:
    description:
      - The service's base URL, for example V(https://api.example.com) or V(http://127.0.0.1:8000).
      - Paths are joined to it. Credentials in it (V(https://user:pass@host)) are never printed.
    type: str
  timeout:
    description:
      - Seconds to wait for each read of an answer (and for the connection when O(connect_timeout) is not set).
      - Never longer than what is left of O(deadline).
    type: float
    default: 10
  connect_timeout:
    description:
      - Seconds to wait for a TCP connection; defaults to O(timeout).
    type: float
  deadline:
    description:
      - Overall time budget of the module call in seconds, on a monotonic clock. No retry, backoff or poll
        goes past it; what has not answered by then is reported as an C(error) record, never as a pass.
    type: float
    default: 60
  retries:
    description:
      - How many more attempts after the first when there is no answer (timeout, connection refused or
        reset, name resolution) or the answer is 429 Too Many Requests.
      - Waits C(backoff * 2^(n-1)) seconds before retry n (at most O(backoff_max)), shortened by up to 50% at
        random (jitter). A C(Retry-After) header is honoured up to O(backoff_max).
      - A 429 that persists gives an C(error) record (the check could not decide), never C(pass) or C(fail).
      - A request that may change data (a write) is resent only when it certainly did not arrive (connection
        refused, name resolution, 429), never after a timeout or a reset.
    type: int
    default: 3
  backoff:
    description: Base delay of the exponential backoff, in seconds.
    type: float
    default: 0.5
  backoff_max:
    description: Longest single backoff delay, in seconds.
    type: float
    default: 10
  concurrency:
    description:
      - How many requests run at the same time inside this one module call (a bounded thread pool).
    type: int
    default: 8
  validate_certs:
    description:
      - Verify TLS certificates of https:// URLs. Leave it on in production.
    type: bool
    default: true
  ca_path:
    description:
      - A PEM file of CA certificates to verify the server with, instead of the system's trust store.
    type: path
  client_cert:
    description:
      - A PEM client certificate (may include its key) for mutual TLS.
    type: path
  client_key:
    description:
      - The PEM private key of O(client_cert) when it is not inside that file.
    type: path
  use_proxy:
    description:
      - Use the proxy named by the C(https_proxy)/C(http_proxy) environment variables (C(no_proxy) is honoured).
    type: bool
    default: true
  rate_limit:
    description:
      - The rate limit of the service at O(base_url), as data; the defaults are the real CleanWithSnapshot limiter (a
        sliding-window log per client, 30 requests in any 60 seconds, the health paths, the Stripe webhooks and OPTIONS
        not counted).
      - Every request of this module call that the service counts (probes and the admin matrix alike, retries
        included) takes a slot of one budget - O(rate_limit.requests) less O(rate_limit.margin). Requests go at full
        speed while the budget has room; past it a request waits only until the oldest counted request leaves the
        window, and never past O(deadline) (then it is an C(error) record saying so, never a pass).
      - Runs share the budget. The modules' action plugins keep a ledger of send times on the controller, per service
        and per client (the machine the requests leave from), and hand the module the sends still inside the window,
        so a run started right after another waits exactly as long as it must. The ledger entry is locked while the
        module runs (runs against one service take turns) and written atomically; a missing or corrupt entry is
        started afresh with a warning.
      - A 429 that arrives anyway (another client behind the same rate-limit key) is neither a pass nor a fail; the
        budget waits out a whole window (the only wait sure to be enough) and the request is sent again, within
        O(deadline).
      - Requests to other origins than O(base_url)'s are not counted.
    type: dict
    default: {}
    suboptions:
      requests:
        description: Requests the service allows per client in any O(rate_limit.window); V(0) means no limit.
        type: int
        default: 30
      window:
        description: The limit's sliding window, in seconds.
        type: float
        default: 60
      margin:
        description: Requests of every window left unused, for other clients behind the same key (an operator's curl).
        type: int
        default: 1
      exempt_paths:
        description: Paths the service does not count (compared without a trailing slash).
        type: list
        elements: str
        default: [/healthz, /readyz, /healthz/backup, /v1/payments/stripe/webhook, /stripe/webhook]
      exempt_methods:
        description: Methods the service does not count.
        type: list
        elements: str
        default: [OPTIONS]
      ledger:
        description: Keep the controller's ledger (read before, written after the call). Off, each call starts from an
          empty window.
        type: bool
        default: true
      ledger_dir:
        description:
          - The ledger's directory on the controller. Defaults to the E(CWS_RATE_LEDGER_DIR) environment variable, else
            C(~/.cache/cleanwithsnapshot.release/rate-ledger).
        type: path
      client:
        description:
          - The ledger's name for the machine the requests leave from; by default C(controller) for a local
            connection, else the host's C(ansible_host) or inventory name (or the delegated host).
        type: str
      history:
        description:
          - Epoch times of requests already sent to the service inside the window (by other tools, say). The action
            plugin adds the ledger's to them.
        type: list
        elements: float
        default: []
notes:
  - HTTP is done with the Python standard library only; nothing has to be installed
    on the host that runs the module.
  - HTTP error statuses (4xx, 5xx) are answers the module asserts on, not task failures. The task fails only on
    bad input; a failing check is a C(fail) record for the gate to judge.
  - Every secret (passwords, tokens, C(Authorization) and other credential headers, URL credentials) is masked
    in records, messages and the echoed module arguments.
"""

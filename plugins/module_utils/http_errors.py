# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Why an HTTP request got no answer: the error kinds, and exceptions mapped to them without tracebacks."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import http.client
import socket
import ssl
import urllib.error

from ansible.module_utils.common.text.converters import to_native


RETRYABLE_ERRORS = ("timeout", "connect_timeout", "refused", "reset", "dns", "network", "protocol")
# Errors after which a request certainly did not reach the application: safe to resend even a write.
NOT_SENT_ERRORS = ("refused", "dns", "connect_timeout")
# No answer, and the service is the party at fault: nothing listens on its port (refused), or it accepted the
# connection and never answered (timeout: hung). A connect timeout, DNS or TLS trouble may be the network's or the
# checking machine's, so those stay "cannot decide".
SERVICE_FAULT_ERRORS = ("refused", "timeout")
# No answer that says the service is not there (or not reachable) at all: what ends a liveness precondition.
UNREACHABLE_ERRORS = ("refused", "timeout", "connect_timeout", "dns", "network", "reset", "deadline")


class ConnectTimeout(OSError):
    """No TCP connection within the connect timeout (raised by the transport's connection factory): unlike a read
    timeout, nothing shows the service was there."""


class TransportError(Exception):
    """No HTTP answer: ``kind`` is timeout (connected, no answer in time), connect_timeout, refused, reset, dns, tls,
    network, protocol, deadline, invalid or not_run (not sent: see HttpClient.halt); the message never holds a
    secret once passed through Secrets.text()."""

    def __init__(self, kind, message):
        super(TransportError, self).__init__(message)
        self.kind = kind
        self.message = message

    @property
    def retryable(self):
        return self.kind in RETRYABLE_ERRORS


def classify_error(exc):
    """Exception -> (kind, message) without tracebacks."""
    if isinstance(exc, TransportError):
        return exc.kind, exc.message
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        reason = exc.reason
        if isinstance(reason, BaseException):
            return classify_error(reason)
        return "network", to_native(reason)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "tls", "certificate verify failed: %s" % (exc.verify_message or to_native(exc))
    if isinstance(exc, ssl.SSLError):
        return "tls", "TLS error: %s" % (exc.reason or to_native(exc))
    if isinstance(exc, ConnectTimeout):
        return "connect_timeout", "timed out connecting (no connection within %g s)" % exc.args[0]
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout", "timed out waiting for the answer (the connection was accepted)"
    if isinstance(exc, ConnectionRefusedError):
        return "refused", "connection refused"
    if isinstance(exc, socket.gaierror):
        return "dns", "name resolution failed: %s" % to_native(exc.strerror or exc)
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, http.client.RemoteDisconnected)):
        return "reset", "connection closed by the server: %s" % exc.__class__.__name__
    if isinstance(exc, http.client.HTTPException):
        return "protocol", "invalid HTTP answer: %s" % exc.__class__.__name__
    if isinstance(exc, OSError):
        return "network", to_native(exc.strerror or exc)
    if isinstance(exc, ValueError):
        return "invalid", to_native(exc)
    return "network", "%s: %s" % (exc.__class__.__name__, to_native(exc))

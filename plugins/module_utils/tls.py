# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TLS for the HTTP checks: the SSLContext (as ``ansible.module_utils.urls.make_context`` makes it) and a certificate
inspector (validity, hostname, days to expiry, self-signed) built on a small DER reader, no third-party library."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import socket
import ssl

from ansible.module_utils.common.text.converters import to_native, to_text

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_errors import TransportError, classify_error


def make_context(cafile=None, validate_certs=True, client_cert=None, client_key=None):
    """An SSLContext as ``ansible.module_utils.urls.make_context`` makes it: verification against ``cafile``
    only when given (else the system's trust store), none at all when ``validate_certs`` is false, and a client
    certificate for mutual TLS."""
    context = ssl.create_default_context(cafile=cafile)
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert:
        if hasattr(context, "post_handshake_auth"):
            context.post_handshake_auth = True  # TLS 1.3 client authentication after the handshake
        context.load_cert_chain(client_cert, keyfile=client_key)
    return context


_OID_CN = b"\x55\x04\x03"
_OID_SAN = b"\x55\x1d\x11"


def _der_read(data, offset):
    """One DER element at ``offset`` -> (tag, content_start, content_end)."""
    tag = data[offset]
    length = data[offset + 1]
    pos = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, pos, end


def _der_children(data, start, end):
    children = []
    pos = start
    while pos < end:
        tag, cstart, cend = _der_read(data, pos)
        children.append((tag, cstart, cend, pos))
        pos = cend
    return children


def _der_time(tag, raw):
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ
        year = int(text[0:2])
        year += 2000 if year < 50 else 1900
        text = "%04d%s" % (year, text[2:])
    stamp = datetime.datetime.strptime(text[:14], "%Y%m%d%H%M%S")
    return stamp.replace(tzinfo=datetime.timezone.utc)


def _der_common_name(data, start, end):
    for _tag, rs, re_, _pos in _der_children(data, start, end):          # RDN sets
        for _t, as_, ae, _p in _der_children(data, rs, re_):             # AttributeTypeAndValue
            parts = _der_children(data, as_, ae)
            if len(parts) == 2 and data[parts[0][1]:parts[0][2]] == _OID_CN:
                return to_text(data[parts[1][1]:parts[1][2]], errors="surrogate_or_replace")
    return None


def parse_certificate(der):
    """The fields of an X.509 certificate a gate reports: subject/issuer CN, validity, SANs and
    whether it is self-issued (issuer == subject)."""
    _tag, cstart, cend = _der_read(der, 0)
    tbs_tag, tstart, tend = _der_read(der, cstart)
    fields = _der_children(der, tstart, tend)
    index = 0
    if fields and fields[0][0] == 0xA0:  # [0] version
        index = 1
    # serialNumber, signature algorithm, issuer, validity, subject
    issuer = fields[index + 2]
    validity = fields[index + 3]
    subject = fields[index + 4]
    times = _der_children(der, validity[1], validity[2])
    not_before = _der_time(times[0][0], der[times[0][1]:times[0][2]])
    not_after = _der_time(times[1][0], der[times[1][1]:times[1][2]])
    sans = []
    for tag, fstart, fend, _pos in fields[index + 5:]:
        if tag != 0xA3:  # [3] extensions
            continue
        seq = _der_children(der, fstart, fend)
        for ext_tag, estart, eend, _p in (_der_children(der, seq[0][1], seq[0][2]) if seq else []):
            parts = _der_children(der, estart, eend)
            if not parts or der[parts[0][1]:parts[0][2]] != _OID_SAN:
                continue
            octets = parts[-1]
            _t, gstart, gend = _der_read(der, octets[1])
            for name_tag, nstart, nend, _q in _der_children(der, gstart, gend):
                raw = der[nstart:nend]
                if name_tag == 0x82:
                    sans.append(to_text(raw))
                elif name_tag == 0x87 and len(raw) in (4, 16):
                    sans.append(socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw))
    return {
        "subject_cn": _der_common_name(der, subject[1], subject[2]),
        "issuer_cn": _der_common_name(der, issuer[1], issuer[2]),
        "self_issued": der[issuer[3]:issuer[2]] == der[subject[3]:subject[2]],
        "not_before": not_before,
        "not_after": not_after,
        "subject_alt_names": sans,
    }


def hostname_matches(hostname, names):
    hostname = (hostname or "").lower().rstrip(".")
    for name in names or []:
        name = name.lower().rstrip(".")
        if name == hostname:
            return True
        if name.startswith("*.") and "." in hostname:
            if hostname.split(".", 1)[1] == name[2:] and hostname.split(".", 1)[0]:
                return True
    return False


def inspect_tls(host, port, server_hostname=None, ca_path=None, client_cert=None, client_key=None, timeout=10.0,
                deadline=None, now=None):
    """Handshake with ``host:port`` and report the certificate. Raises TransportError when no TLS
    handshake is possible at all (refused, timeout, not TLS)."""
    server_hostname = server_hostname or host
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if deadline is not None:
        if deadline.remaining() <= 0:
            raise TransportError("deadline", "the deadline passed before the TLS handshake")
        timeout = min(timeout, deadline.remaining())
    report = {"host": server_hostname, "port": port, "verified": False, "verify_error": None}
    der = None
    try:
        context = make_context(cafile=ca_path, validate_certs=True, client_cert=client_cert, client_key=client_key)
    except (ssl.SSLError, OSError) as exc:
        raise TransportError("tls", "cannot set up TLS (ca_path/client_cert/client_key): %s" % classify_error(exc)[1])
    try:
        with socket.create_connection((host, port), timeout) as sock:
            with context.wrap_socket(sock, server_hostname=server_hostname) as tls:
                der = tls.getpeercert(True)
                report["verified"] = True
                report["protocol"] = tls.version()
    except ssl.SSLCertVerificationError as exc:
        report["verify_error"] = exc.verify_message or to_native(exc)
        report["verify_code"] = exc.verify_code
    except Exception as exc:  # pylint: disable=broad-except
        kind, message = classify_error(exc)
        if kind != "tls":
            raise TransportError(kind, message)
        report["verify_error"] = message
    if der is None:
        loose = ssl.create_default_context()
        loose.check_hostname = False
        loose.verify_mode = ssl.CERT_NONE
        try:
            with socket.create_connection((host, port), timeout) as sock:
                with loose.wrap_socket(sock, server_hostname=server_hostname) as tls:
                    der = tls.getpeercert(True)
                    report["protocol"] = tls.version()
        except Exception as exc:  # pylint: disable=broad-except
            kind, message = classify_error(exc)
            raise TransportError(kind, message)
    if der:
        try:
            cert = parse_certificate(der)
        except (ValueError, IndexError) as exc:
            report["parse_error"] = to_native(exc)
        else:
            report["subject_cn"] = cert["subject_cn"]
            report["issuer_cn"] = cert["issuer_cn"]
            report["self_signed"] = cert["self_issued"]
            report["not_before"] = cert["not_before"].isoformat()
            report["not_after"] = cert["not_after"].isoformat()
            report["days_to_expiry"] = round((cert["not_after"] - now).total_seconds() / 86400.0, 1)
            report["subject_alt_names"] = cert["subject_alt_names"]
            names = cert["subject_alt_names"] or ([cert["subject_cn"]] if cert["subject_cn"] else [])
            report["hostname_match"] = hostname_matches(server_hostname, names)
    return report

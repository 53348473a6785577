#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: alertmanager_alerts
short_description: Check that no Alertmanager alert is firing (criterion alerts.firing)
version_added: 0.1.0
description:
  - The GO/NO-GO checklist's "No alerts triggered" as a check result record for the release gate - reads
    C(GET /api/v2/alerts) of an Alertmanager (active, silenced, inhibited and unprocessed alerts) and returns one
    record, criterion C(alerts.firing) by default.
  - An alert that matches every one of O(matchers) and is firing (neither silenced nor inhibited) makes the record
    C(fail); the summary and the evidence name each one (its alertname, the labels the matchers use - C(severity)
    when there are no matchers - and C(startsAt)).
  - Silenced and inhibited alerts do not fail the check; they are listed apart in the evidence and counted in the
    summary (C(1 silenced)). An unprocessed alert (received, not yet checked against silences and inhibitions)
    counts as firing - nothing shows it is suppressed. Alerts named in O(ignore_alertnames) and alerts whose
    C(endsAt) has passed are left out and counted.
  - The matchers are sent to Alertmanager as C(filter) parameters and applied again to its answer, so the
    verdict does not depend on the server's filtering. With several matcher sets only the matchers common to every
    set are sent.
  - With O(started_at) (when the canary or the soak being judged started), an alert whose C(startsAt) is earlier is
    I(left over) - for example from a canary rolled back minutes ago, whose C(CanaryHighErrorRate) (C(for) 1m over
    2m) or C(CanaryLatencyHigherThanStable) (C(for) 3m over 5m) keeps firing after it. It still fails the check
    (Alertmanager cannot tell whether it is about this run too); the summary marks it C(left over) and says how to
    go on. Left-over alerts named in O(accept_left_over) do not fail the check; they are listed apart.
  - No answer (connection refused, timeout, TLS), an HTTP error status, or a body that is not a JSON list of
    alerts gives an C(error) record - the check could not decide, and the gate treats that as NO-GO, never as a
    pass.
  - Label and annotation values are shown, with anything that looks like a secret masked (URL credentials,
    C(password=...), values of labels such as C(token), and the credentials of this module call).
author:
  - CleanWithSnapshot release engineering (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads; it runs for real in check mode and returns the same record.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  url:
    description:
      - The Alertmanager's base URL, for example V(http://alertmanager:9093) (a path prefix such as
        V(https://ops.example.com/alertmanager) is kept). C(/api/v2/alerts) is joined to it.
      - Credentials in it (V(https://user:pass@host)) are sent as Basic authentication and never printed.
    type: str
    required: true
  bearer_token:
    description:
      - A token sent as C(Authorization Bearer <token>), for an Alertmanager behind an authenticating proxy.
        Never printed.
    type: str
  url_username:
    description: User name for HTTP Basic authentication.
    type: str
  url_password:
    description: Password for HTTP Basic authentication (with O(url_username)). Never printed.
    type: str
  validate_certs:
    description: Verify the TLS certificate of an https:// URL. Leave it on in production.
    type: bool
    default: true
  ca_path:
    description: A PEM file of CA certificates to verify the server with, instead of the system's trust store.
    type: path
  timeout:
    description:
      - Seconds to wait for the connection and for each read. A request that gets no answer is tried twice more
        (short backoff); the whole call takes at most about three times this long.
    type: float
    default: 10
  matchers:
    description:
      - Alertmanager matchers an alert must all satisfy to count, one per item - C(label=value), C(label!=value),
        C(label=~regex), C(label!~regex), for example V(severity=page) or V(severity=~"page|critical").
      - Or a list of matcher sets (each a list of matchers) - an alert counts when it satisfies every matcher of
        one set, for example V([[deployment=canary], [slo=~".+", service=api-canary]]) for the service's canary
        alerts and the SLO burn alerts of the canary (they carry no C(deployment) label). A set may not be empty;
        strings and lists are not mixed.
      - A value may be double-quoted; inside quotes C(\") is a quote, C(\\) a backslash, C(\n) a new line. A
        regular expression must match the whole label value (Alertmanager anchors it); use the syntax common to
        Go's RE2 and Python. A label the alert does not have matches as the empty string.
      - A malformed matcher fails the task, naming it (C(matchers[1]), C(matchers[0][1])). Empty, every alert counts.
    type: list
    elements: raw
    default: []
  ignore_alertnames:
    description:
      - Alert names never counted, for example the always-firing dead man's switch C(Watchdog). They are counted
        apart in the summary and the evidence.
    type: list
    elements: str
    default: [Watchdog]
  started_at:
    description:
      - When the run being judged started, as an RFC 3339 time with a zone (V(2026-11-20T10:00:00Z),
        V(2026-11-20T10:00:00+00:00)) - the canary role passes its recorded start, the soak role its own start.
      - A matching alert whose C(startsAt) is earlier is called left over in the summary and the evidence
        (C(left_over)); it still fails the check unless O(accept_left_over) names it. Compared with the time of
        Prometheus, so the clocks of the controller and of Prometheus should agree.
      - Unset, no alert is called left over.
    type: str
  accept_left_over:
    description:
      - Left-over alerts (see O(started_at)) the user accepts - they are listed apart (C(accepted_left_over)) and do
        not fail the check. An alert that started after O(started_at) is never accepted.
      - Each item is an alert name (V(CanaryLatencyHigherThanStable)), one matcher (V(alertname=~"Canary.*")) or a
        list of matchers a left-over alert must all satisfy. Requires O(started_at).
      - An accepted alert also hides the same alert of this run while it keeps firing - the SLO analysis still
        judges the run. Accept only what you know to be left over.
    type: list
    elements: raw
    default: []
  criterion:
    description: The criterion id of the record.
    type: str
    default: alerts.firing
  blocking:
    description: Whether the record gates the release (false makes it advisory).
    type: bool
    default: true
notes:
  - HTTP is done with the Python standard library only; nothing has to be installed on the host that runs the module.
  - A firing alert is data for the gate (a C(fail) record), not a task failure; the task fails only on bad input.
"""

EXAMPLES = r"""
- name: No paging alert may fire during the release
  cleanwithsnapshot.release.alertmanager_alerts:
    url: http://alertmanager:9093
    matchers:
      - severity=page
  register: alerts

- name: Canary alerts of the api-canary job, through an authenticating proxy
  cleanwithsnapshot.release.alertmanager_alerts:
    url: https://ops.example.com/alertmanager
    bearer_token: "{{ vault_alertmanager_token }}"
    matchers:
      - alertname=~"Canary.*"
      - severity!=info
    ignore_alertnames: [Watchdog, InfoInhibitor]

- name: The canary's alerts and its SLO burn alerts; one left-over alert of the last rolled-back canary accepted
  cleanwithsnapshot.release.alertmanager_alerts:
    url: http://alertmanager:9093
    matchers:
      - [deployment=canary]
      - ['slo=~".+"', service=api-canary]
    started_at: "2026-11-20T10:00:00Z"
    accept_left_over: [CanaryLatencyHigherThanStable]
"""

RETURN = r"""
records:
  description:
    - One check result record, C({criterion, name, status, blocking, summary, evidence, duration_ms}); C(status)
      is C(pass) (no firing alert), C(fail) (firing alerts, named in the summary) or C(error) (Alertmanager gave
      no usable answer - could not decide).
    - C(evidence) holds C(url), C(matchers) (as given; one set as a list of strings), C(matcher_sets),
      C(ignore_alertnames), C(started_at), C(accept_left_over), C(counts) (C(firing), C(silenced), C(inhibited),
      C(ignored), C(not_matching), C(resolved), C(left_over) - firing ones that started before O(started_at),
      C(accepted_left_over)) and the lists C(firing), C(silenced), C(inhibited), C(accepted_left_over) (at most 50
      each, the rest counted in C(<list>_omitted)); on an error C(reason) and C(matcher_sets).
  returned: always
  type: list
  elements: dict
alerts:
  description:
    - The matching alerts by group - C(firing), C(silenced), C(inhibited), C(accepted_left_over) - each alert as
      C(alertname), C(labels), C(matched_labels), C(annotations), C(startsAt), C(endsAt), C(state), C(silenced_by)
      (silence ids), C(inhibited_by) (fingerprints), C(fingerprint), C(receivers), C(generator_url), C(left_over)
      (it started before O(started_at)) and, when accepted, C(accepted_by) (the O(accept_left_over) item). Empty
      lists on an error.
  returned: always
  type: dict
  sample: {firing: [{alertname: CanaryHighErrorRate, matched_labels: {severity: page}, state: active,
           startsAt: "2026-11-20T10:00:00.000Z", left_over: false}], silenced: [], inhibited: [], accepted_left_over: []}
status:
  description: The record's status.
  returned: always
  type: str
  sample: pass
counts:
  description: Number of records per status.
  returned: always
  type: dict
"""

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.alertmanager import (
    AlertCheck,
    InputError,
    argument_spec,
    collect_secrets,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import exit_with_records
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_transport import HttpClient
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.module_support import (
    API_CONNECTION_CONSTRAINTS,
    SecretAwareModule,
)


def main():
    module = SecretAwareModule(argument_spec=argument_spec(), supports_check_mode=True, secret_collector=collect_secrets,
                               **API_CONNECTION_CONSTRAINTS)
    try:
        check = AlertCheck(module.params)
    except InputError as exc:
        module.fail_redacted(str(exc))
    record, alerts = check.run(HttpClient())
    exit_with_records(module, module.secrets.value([record]), changed=False, alerts=module.secrets.value(alerts))


if __name__ == "__main__":
    main()

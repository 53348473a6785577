#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# This file only documents the gate; the gate itself is the action plugin of the same name
# (plugins/action/gate.py), which runs on the controller.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: gate
short_description: Decide GO or NO-GO for a release from the records of every check
version_added: 0.1.0
description:
  - Reads the check-result records that the collection's check modules return (from every host),
    and decides one verdict for the release, C(GO), C(NO-GO) or C(NO-GO-INCONCLUSIVE).
  - Per criterion, the records of all hosts (and several records of one host) are aggregated. The criterion's status is
    the worst one (C(error) beats C(fail) beats C(pass) beats C(skipped)); for the decision, a blocking C(fail) on any
    host makes the criterion fail, else a blocking C(error) on any host makes it inconclusive.
  - A blocking C(fail) gives C(NO-GO). A blocking C(error), a required criterion with no real outcome,
    a blocking check skipped because of check mode, an O(expected_hosts) host without any result, malformed input,
    or a run in which no blocking criterion passed at all gives C(NO-GO-INCONCLUSIVE) (unless something also failed, which gives C(NO-GO)).
    The gate fails closed, it never says C(GO) because a check silently did not run.
  - Waived criteria are reported as waived and do not gate; advisory findings are reported and never gate.
  - Writes three reports into a new folder of O(artifacts_dir) named after the UTC time, the playbook and the
    release label (C(20261207T044501Z-verify-v1.2.3)), each written to a temporary file and renamed into place,
    so no reader ever sees a half-written report and no run overwrites another's. C(latest) is a link to the newest
    folder (replaced atomically), the top-level C(gonogo.json), C(gonogo.md) and C(junit.xml) are links into
    C(latest), and only the newest O(keep_runs) folders are kept. C(gonogo.json) for machines, C(gonogo.md) for humans
    (verdict banner, failing criteria first with their summary and key evidence, then every criterion),
    and C(junit.xml) (one test case per criterion and host).
  - A canary's stages are shown stage by stage. A record whose evidence names its stage (C(stage.weight), set by
    M(cleanwithsnapshot.release.canary_state) on every record of a stage) belongs to that stage. C(gonogo.md) has a
    table per stage (and host) of its SLO records (C(slo.*) criteria, or records with C(measurements)) with the
    canary's value, the stable (baseline) value, the threshold, the requests each side served, the looks taken and
    the last look's note, read from the last measurement that has a value; a figure a record does not carry is
    shown as C(-). C(junit.xml) has one test case per criterion, host and stage (named like
    C(slo.error_rate [app1, stage 10 %])) whose text and properties carry those figures, and the stage's
    C(canary.step) case carries the stage's table.
  - Evidence is redacted again before anything is written or returned. Values of keys that look like secrets
    (password, token, secret, authorization, dsn, api key, cookie, credential) and every value of
    O(redact_values) are masked.
  - Publishes the verdict the way M(ansible.builtin.set_stats) does, for AWX/Tower workflows.
  - This is an action plugin, it runs on the controller and never connects to a host.
author:
  - CleanWithSnapshot release engineering (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
options:
  records:
    description:
      - Check records, each C({criterion, name, status, blocking, summary, evidence, duration_ms}) and
        optionally C(host) (the host the check ran for) and C(skip_reason).
      - C(skip_reason) says why a C(skipped) record was not decided, one of C(check_mode), C(not_requested),
        C(not_applicable); any other value, or a skip reason on a record that is not C(skipped), is bad input.
      - O(records) and O(results) may both be given; their records are combined.
    type: list
    elements: raw
    default: []
  results:
    description:
      - Registered results of check tasks, each having C(records). Accepted shapes are one registered result,
        a registered loop (its C(results) list), a list of results (for example gathered from C(hostvars)
        of many hosts, also nested lists), or a mapping of host name to result (the host name then becomes
        the C(host) of each record that has none).
      - A result of a skipped task is noted and ignored. A result of a failed task without records is bad input.
    type: raw
  waivers:
    description:
      - Accepted risks. A waiver makes the failing, erroring or missing records of a criterion non-gating
        (only on O(waivers[].host) when given); the report lists them as waived.
      - An expired waiver is ignored and the report says so. A waiver without a reason, without a date or with
        a bad date is bad input.
      - A list of mappings. Any other shape is bad input the gate reports (a NO-GO-INCONCLUSIVE report naming it),
        never a task that fails without a report.
    type: raw
    default: []
    suboptions:
      criterion:
        description: The criterion id waived, for example C(backup.freshness).
        type: str
        required: true
      reason:
        description: Why the risk is accepted. Required and non-empty.
        type: str
        required: true
      expires:
        description: The last day (UTC) on which the waiver applies, C(YYYY-MM-DD).
        type: str
        required: true
      host:
        description: Waive the criterion on this host only.
        type: str
      approved_by:
        description: Who accepted the risk (shown in the report).
        type: str
      ticket:
        description: A change or incident reference (shown in the report).
        type: str
  advisory:
    description:
      - Criterion ids treated as advisory whatever the records' C(blocking) flag says, for example per
        environment (C(config.stripe) on staging). Their failures are reported, never gating.
    type: list
    elements: str
    default: []
  input_variables:
    description:
      - "The variables O(waivers) and O(advisory) were read from, C({waivers: gate_waivers, advisory: gate_advisory}):
        their input errors are then named by the variable the user set - C(release_waivers) when C(gate_waivers)
        only hands it over - instead of by the option."
      - Keys C(waivers) and C(advisory); a key left out keeps the option's name.
    type: dict
    default: {}
  required_criteria:
    description:
      - Criterion ids that must have at least one record with a real outcome (C(pass), C(fail) or C(error)).
        A required criterion with no record, or with skipped records only, makes the verdict
        C(NO-GO-INCONCLUSIVE) unless a waiver without O(waivers[].host) covers it.
    type: list
    elements: str
    default: []
  expected_hosts:
    description:
      - Hosts that must each have reported at least one real outcome (C(pass), C(fail) or C(error)); one that did not
        (it failed or became unreachable before its checks ran) makes the verdict at best C(NO-GO-INCONCLUSIVE).
      - A host that fails drops out of C(ansible_play_hosts), so a gate fed from that list alone would not notice it;
        pass C(ansible_play_hosts_all) or the inventory group here.
    type: list
    elements: str
  artifacts_dir:
    description:
      - The directory the run folders are made in, created when missing.
      - Defaults to C(artifacts) next to the playbook.
    type: path
  keep_runs:
    description:
      - How many run folders to keep in O(artifacts_dir), the newest by the time in their names; older ones are
        removed after the reports were written. C(0) keeps every run.
      - Only folders the gate made (a C(.cleanwithsnapshot-run) file inside and a name of that shape) are ever
        removed; anything else in O(artifacts_dir) is left alone.
    type: int
    default: 20
  playbook:
    description:
      - The playbook's name in the run folder's name.
      - Defaults to the playbook file C(ansible-playbook) was started with (C(run) when there is none).
    type: str
  stats_markdown_bytes:
    description:
      - The most bytes (UTF-8) of C(gonogo.md) published in the stats as C(gonogo_markdown); a longer report is cut at
        a line with a note saying so. C(0) publishes no Markdown.
    type: int
    default: 32768
  fail_on_nogo:
    description:
      - Fail the task on any verdict other than C(GO), with a message naming each failing and inconclusive
        criterion and its evidence summary.
      - Bad input fails the task whatever this says.
    type: bool
    default: true
  publish_stats:
    description:
      - Return C(ansible_stats) (set_stats semantics, C(per_host=false)) with C(gonogo_verdict),
        C(gonogo_failing), C(gonogo_findings), C(gonogo_markdown) and C(gonogo_report), so an AWX workflow sees the
        verdict and keeps the report (under AWX the files stay in the job's temporary directory).
    type: bool
    default: true
  release:
    description: A free-text label of what is released (version, git ref); shown in every report.
    type: str
    default: ''
  redact_values:
    description:
      - Secret values (passwords, tokens) to mask wherever they appear in the records, the reports and the result,
        in case a check let one through.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    details:
      - The gate decides from the records it receives; read-only probes run for real in check mode.
      - The reports are written in check mode too (they are the point of a check run); they say C(mode=check).
      - A blocking record skipped because of check mode (its C(skip_reason) is C(check_mode); records built before
        that field existed say so with C(evidence.check_mode=true)) leaves its criterion unverified, so a check
        run never says C(GO) for something it did not check. The summary's wording is never read.
  diff_mode:
    support: none
  platform:
    platforms: all
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
notes:
  - Run it once per release decision, on the controller, for example with C(run_once=true) or in a play on C(localhost),
    feeding it the registered results of all hosts.
  - ansible-core only records C(ansible_stats) from tasks that did not fail. With O(fail_on_nogo=true) a NO-GO therefore
    reaches AWX as a failed job without the stats. When a workflow must branch on the verdict itself, set
    O(fail_on_nogo=false) and fail the play in a next task on RV(verdict) (see the examples).
  - The stats are published with C(aggregate=false), so a second gate in the same run replaces the first verdict instead of
    concatenating strings (what set_stats' aggregation does to text values).
  - C(changed) is always false, the reports are run artifacts on the controller, not managed state.
seealso:
  - module: ansible.builtin.set_stats
  - module: cleanwithsnapshot.release.config_audit
"""

EXAMPLES = r"""
- name: Decide from the registered results of this play's check tasks
  cleanwithsnapshot.release.gate:
    results:
      - "{{ config_result }}"
      - "{{ probes_result }}"
      - "{{ rls_result }}"
    required_criteria:
      - config.secrets
      - migrations.at_head
      - rls.isolation
      - health.readiness
    release: "{{ release_version }}"
    artifacts_dir: "{{ playbook_dir }}/artifacts/{{ release_version }}"
  run_once: true

- name: Gather the records of every app host (host name -> result) and decide on the controller
  cleanwithsnapshot.release.gate:
    results: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'preflight_result'))) }}"
    expected_hosts: "{{ groups['app'] }}"
    advisory: "{{ ['config.stripe', 'config.email'] if env_name == 'staging' else [] }}"
    waivers:
      - criterion: backup.freshness
        reason: Backup host migration, manual dump taken before the release
        expires: "2026-12-31"
        approved_by: ops on-call
        ticket: CHG-1234
  delegate_to: localhost
  run_once: true

- name: Keep the verdict visible to an AWX workflow on NO-GO, then stop the play
  cleanwithsnapshot.release.gate:
    records: "{{ all_records }}"
    fail_on_nogo: false
  register: gonogo
  run_once: true

- name: Stop on anything but GO
  ansible.builtin.fail:
    msg: "{{ gonogo.msg }}"
  when: gonogo.verdict != 'GO'
  run_once: true
"""

RETURN = r"""
verdict:
  description: The decision.
  returned: always
  type: str
  sample: NO-GO
  choices: [GO, NO-GO, NO-GO-INCONCLUSIVE]
mode:
  description: C(check) when the gate ran in check mode, else C(normal).
  returned: always
  type: str
  sample: normal
release:
  description: The O(release) label.
  returned: always
  type: str
  sample: v2026.11.1
msg:
  description: One line, the verdict and its reasons, then each failing and inconclusive criterion with its evidence summary.
  returned: always
  type: str
  sample: "NO-GO for release v2026.11.1: 1 blocking criterion failed: health.readiness | FAILED health.readiness: app1: /readyz 503"
failing:
  description: The criteria whose blocking records failed (not waived).
  returned: always
  type: list
  elements: str
  sample: [health.readiness]
inconclusive:
  description: The criteria that could not be decided (blocking error, required but missing, skipped because of check mode, malformed).
  returned: always
  type: list
  elements: str
  sample: [jobs.heartbeat]
waived:
  description: The criteria that would have gated but are covered by a valid waiver.
  returned: always
  type: list
  elements: str
  sample: [backup.freshness]
advisory:
  description: The criteria with advisory (non-blocking) failures or errors.
  returned: always
  type: list
  elements: str
  sample: [rls.coverage]
missing_hosts:
  description: The O(expected_hosts) without any result.
  returned: always
  type: list
  elements: str
  sample: [app2]
input_errors:
  description: What was wrong with the input, each naming the record index or waiver field.
  returned: always
  type: list
  elements: str
  sample: ["records[3].status: unknown status ok (expected pass, fail, error or skipped)"]
counts:
  description: Counts of criteria by outcome, of records by status, and of hosts.
  returned: always
  type: dict
  sample: {"criteria": {"total": 30, "pass": 27, "fail": 1, "inconclusive": 0, "waived": 1, "advisory": 1, "skipped": 0},
           "records": {"total": 44, "pass": 40, "fail": 2, "error": 0, "skipped": 2}, "hosts": 2}
criteria:
  description: Every criterion with its outcome (fail, inconclusive, waived, advisory, pass, skipped), worst status, hosts and summary.
  returned: always
  type: list
  elements: dict
  sample: [{"criterion": "health.readiness", "outcome": "fail", "status": "fail", "blocking": true,
            "required": true, "hosts": ["app1", "app2"], "summary": "app1: /readyz 503"}]
reports:
  description: Paths of the reports written, in this run's folder.
  returned: when the reports were written
  type: dict
  sample: {"json": "/srv/release/artifacts/20261207T044501Z-verify-v1.2.3/gonogo.json",
           "markdown": "/srv/release/artifacts/20261207T044501Z-verify-v1.2.3/gonogo.md",
           "junit": "/srv/release/artifacts/20261207T044501Z-verify-v1.2.3/junit.xml"}
run_dir:
  description: This run's report folder.
  returned: when the reports were written
  type: str
  sample: /srv/release/artifacts/20261207T044501Z-verify-v1.2.3
removed_runs:
  description: The run folders removed by O(keep_runs), oldest first.
  returned: when the reports were written
  type: list
  elements: str
  sample: [20261101T020000Z-verify-v1.2.2]
ansible_stats:
  description:
    - Custom stats in M(ansible.builtin.set_stats) form; ansible-core records them for successful tasks and AWX
      turns them into job artifacts. C(data) holds C(gonogo_verdict), C(gonogo_failing) (the failing criterion ids),
      C(gonogo_findings) (each failing and inconclusive criterion with its outcome, hosts and whole summary),
      C(gonogo_markdown) (C(gonogo.md), at most O(stats_markdown_bytes) bytes, cut with a note) and C(gonogo_report)
      (release, mode, generated_at, inconclusive, waived, missing_hosts, run_dir, markdown_cut and the report paths).
    - Secrets are masked in all of it, as in the reports.
  returned: when O(publish_stats=true)
  type: dict
  sample: {"data": {"gonogo_verdict": "NO-GO", "gonogo_failing": ["health.readiness"],
           "gonogo_findings": [{"criterion": "health.readiness", "outcome": "fail", "hosts": ["app1"],
                                "summary": "app1: GET /readyz 503"}],
           "gonogo_markdown": "# Release gate: NO-GO ...",
           "gonogo_report": {"release": "v1", "mode": "normal", "run_dir": "/srv/release/artifacts/20261207T044501Z-verify-v1",
                             "markdown_cut": false, "json": "/srv/release/artifacts/20261207T044501Z-verify-v1/gonogo.json"}},
           "per_host": false, "aggregate": false}
"""

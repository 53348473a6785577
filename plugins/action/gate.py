# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release gate: the records of every check (of every host) -> GO / NO-GO / NO-GO-INCONCLUSIVE,
reports in a folder of their own under the artifacts directory, and the verdict published with set_stats
semantics.

The decision lives in plugin_utils/decision.py and the reports in plugin_utils/reports.py (pure, unit
tested); this plugin validates the task's options, reads check mode, writes the reports and shapes the
task result.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible import context

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import redact
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils import decision, input_checks, report_runs, reports
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils.controller_action import ControllerAction

ARGUMENT_SPEC = dict(
    records=dict(type="list", elements="raw", default=[]),
    results=dict(type="raw"),
    # Shape checked by the decision, which names the user's variable and still writes the report.
    waivers=dict(type="raw", default=[]),
    advisory=dict(type="list", elements="str", default=[]),
    input_variables=dict(type="dict", default={}),
    required_criteria=dict(type="list", elements="str", default=[]),
    expected_hosts=dict(type="list", elements="str"),
    artifacts_dir=dict(type="path"),
    keep_runs=dict(type="int", default=report_runs.DEFAULT_KEEP_RUNS),
    playbook=dict(type="str"),
    stats_markdown_bytes=dict(type="int", default=reports.STATS_MARKDOWN_LIMIT),
    fail_on_nogo=dict(type="bool", default=True),
    publish_stats=dict(type="bool", default=True),
    release=dict(type="str", default=""),
    redact_values=dict(type="list", elements="str", default=[], no_log=True),
)


def _playbook_name():
    """The playbook ansible-playbook was started with (the first, when several were given)."""
    given = (context.CLIARGS or {}).get("args") or ()
    return given[0] if given else ""


class ActionModule(ControllerAction):
    """Decide on the controller; never connects to a host."""

    argument_spec = ARGUMENT_SPEC

    def run_on_controller(self, args, task_vars, result):
        for option in ("keep_runs", "stats_markdown_bytes"):
            if args.get(option) < 0:
                result.update(failed=True, msg="option %s: %d is negative (0 means %s)" % (
                    option, args[option], "keep every run" if option == "keep_runs" else "no Markdown in the stats"))
                return result
        secrets = [str(s) for s in (args.get("redact_values") or []) if s]
        check_mode = bool(self._task.check_mode)

        report = decision.evaluate(
            records=args.get("records"),
            results=args.get("results"),
            waivers=args.get("waivers"),
            advisory=args.get("advisory"),
            required_criteria=args.get("required_criteria"),
            expected_hosts=args.get("expected_hosts"),
            check_mode=check_mode,
            release=args.get("release") or "",
            secrets=secrets,
            # Input errors named by the variable the user set (release_waivers, handed over as gate_waivers).
            names=dict((option, input_checks.user_variable(str(variable), task_vars))
                       for option, variable in (args.get("input_variables") or {}).items() if variable),
        )

        artifacts_dir = args.get("artifacts_dir")
        if not artifacts_dir:
            base = task_vars.get("playbook_dir") or os.getcwd()
            artifacts_dir = os.path.join(str(base), "artifacts")

        paths = run_dir = None
        write_error = None
        warnings = []
        try:
            paths, run_dir, removed, warnings = report_runs.write_run(
                report, artifacts_dir, args.get("playbook") or _playbook_name(), args.get("keep_runs"))
            result["run_dir"] = run_dir
            result["removed_runs"] = removed
        except (OSError, IOError) as exc:
            write_error = "could not write the reports to %s: %s" % (artifacts_dir, exc.strerror or exc)

        msg = reports.message(report, paths)
        result.update(
            changed=False,
            verdict=report["verdict"],
            mode=report["mode"],
            release=report["release"],
            failing=report["failing"],
            inconclusive=report["inconclusive"],
            waived=report["waived"],
            advisory=report["advisory"],
            input_errors=report["input_errors"],
            missing_hosts=report["missing_hosts"],
            counts=report["counts"],
            criteria=[
                dict((key, criterion[key]) for key in ("criterion", "outcome", "status", "blocking", "required", "hosts", "summary"))
                for criterion in report["criteria"]
            ],
            msg=msg,
        )
        if paths:
            result["reports"] = paths
        warnings = ["waivers[%d] for %s expired on %s and was ignored" % (w["index"], w["criterion"], w["expires"])
                    for w in report["waivers"]["expired"]] + warnings
        if warnings:
            result["warnings"] = warnings
        if args.get("publish_stats"):
            # set_stats' shape; aggregate=false so a second gate in one run replaces the verdict
            # instead of concatenating the strings.
            result["ansible_stats"] = {"data": reports.stats(report, paths, run_dir, args.get("stats_markdown_bytes")),
                                       "per_host": False, "aggregate": False}

        failed = False
        if report["input_errors"]:
            failed = True
        elif args.get("fail_on_nogo") and report["verdict"] != decision.GO:
            failed = True
        if write_error:
            failed = True
            result["msg"] = "%s | %s" % (write_error, msg)
        if failed:
            result["failed"] = True
        return redact(result, secrets)

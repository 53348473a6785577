# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release gate: the records of every check (of every host) -> GO / NO-GO / NO-GO-INCONCLUSIVE,
reports in an artifacts directory, and the verdict published with set_stats semantics.

The decision lives in plugin_utils/decision.py and the reports in plugin_utils/reports.py (pure, unit
tested); this plugin validates the task's options, reads check mode, writes the reports and shapes the
task result.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os


from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import redact
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils import decision, reports
from ansible_collections.cleanwithsnapshot.release.plugins.plugin_utils.controller_action import ControllerAction

ARGUMENT_SPEC = dict(
    records=dict(type="list", elements="raw", default=[]),
    results=dict(type="raw"),
    waivers=dict(type="list", elements="dict", default=[]),
    advisory=dict(type="list", elements="str", default=[]),
    required_criteria=dict(type="list", elements="str", default=[]),
    expected_hosts=dict(type="list", elements="str"),
    artifacts_dir=dict(type="path"),
    fail_on_nogo=dict(type="bool", default=True),
    publish_stats=dict(type="bool", default=True),
    release=dict(type="str", default=""),
    redact_values=dict(type="list", elements="str", default=[], no_log=True),
)


class ActionModule(ControllerAction):
    """Decide on the controller; never connects to a host."""

    argument_spec = ARGUMENT_SPEC

    def run_on_controller(self, args, task_vars, result):
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
        )

        artifacts_dir = args.get("artifacts_dir")
        if not artifacts_dir:
            base = task_vars.get("playbook_dir") or os.getcwd()
            artifacts_dir = os.path.join(str(base), "artifacts")

        paths = None
        write_error = None
        try:
            paths = reports.write_reports(report, artifacts_dir)
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
                    for w in report["waivers"]["expired"]]
        if warnings:
            result["warnings"] = warnings
        if args.get("publish_stats"):
            # set_stats' shape; aggregate=false so a second gate in one run replaces the verdict
            # instead of concatenating the strings.
            result["ansible_stats"] = {"data": reports.stats(report, paths), "per_host": False, "aggregate": False}

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

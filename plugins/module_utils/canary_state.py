# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recorded state of a canary release on its application host, and the records of its steps.

One JSON file says which version runs as canary, its traffic stages, the stages done with their outcome
and how the release ended. A re-run reads it: the same version still running resumes after its last
passed stage, another version in progress is refused (naming it) unless a restart is asked for, and a
version already promoted has nothing left to do. Every write replaces the file atomically (a temporary
file in the same directory, then a rename), so a crash leaves the old state or the new one, never half.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import tempfile

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.check_result import (
    ERROR,
    FAIL,
    PASS,
    SKIP_CHECK_MODE,
    SKIPPED,
    make_record,
    records_of_results,
    rollup_record,
)
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.json_file import read_json

RUNNING = "running"
PROMOTED = "promoted"
ROLLED_BACK = "rolled_back"
ABANDONED = "abandoned"
FINISHED = (PROMOTED, ROLLED_BACK, ABANDONED)
HISTORY_MAX = 20


class CanaryStateError(Exception):
    """Input or recorded state that does not allow the action; the message names the option to change."""


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def validate_stages(stages, option="stages"):
    """Traffic weights in percent: integers in 1..100, strictly increasing."""
    if not stages:
        raise CanaryStateError("%s: give at least one traffic stage (a weight in percent, e.g. [10, 25, 50, 100])" % option)
    previous = 0
    for index, weight in enumerate(stages):
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise CanaryStateError("%s[%d]: %r is not a whole number of percent" % (option, index, weight))
        if not 1 <= weight <= 100:
            raise CanaryStateError("%s[%d]: weight %d is outside 1-100 (percent of the traffic sent to the canary)"
                                   % (option, index, weight))
        if weight <= previous:
            raise CanaryStateError("%s[%d]: weight %d does not increase over the stage before it (%d); stages must "
                                   "increase" % (option, index, weight, previous))
        previous = weight
    return list(stages)


def load(path):
    """The recorded state, or None when there is none. An unreadable file is an error, never 'no canary'."""
    try:
        state = read_json(path)
    except (OSError, ValueError) as exc:
        raise CanaryStateError("path: the canary state %s cannot be read (%s); move it away to start afresh"
                               % (path, exc))
    if state is None:
        return None
    if not isinstance(state, dict) or "status" not in state:
        raise CanaryStateError("path: %s is not a canary state file; move it away to start afresh" % path)
    return state


def save(path, state):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".canary-state.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state, handle, indent=1, sort_keys=True)
            handle.write("\n")
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _new_state(version, stages, started_by, previous):
    history = list((previous or {}).get("history") or [])
    if previous:
        history.append(dict((key, previous.get(key)) for key in ("version", "status", "started", "finished")))
    now = utcnow()
    return {"version": version, "stages": stages, "status": RUNNING, "started": now, "updated": now,
            "started_by": started_by, "steps": [], "history": history[-HISTORY_MAX:]}


def _passed_weights(state):
    return [step["weight"] for step in state.get("steps", []) if step.get("accepted")]


def begin(state, version, stages, restart=False, started_by=""):
    """Plan the run: ``(new_state or None, plan)``; plan says mode (start|resume|done), the stages left and
    whether an earlier run of this version stopped on a failed stage."""
    stages = validate_stages(stages)
    if not version:
        raise CanaryStateError("version: name the release that runs as canary")
    if state and state.get("status") == RUNNING and not restart:
        if state.get("version") != version:
            raise CanaryStateError(
                "a canary of %s is in progress (started %s by %s, stages done: %s); finish it first, or set "
                "restart (canary_restart) to abandon it and start %s"
                % (state.get("version"), state.get("started"), state.get("started_by") or "unknown",
                   _passed_weights(state) or "none", version))
        if state.get("stages") != stages:
            raise CanaryStateError(
                "stages: the canary of %s in progress has the stages %s, not %s; keep them to resume, or set "
                "restart (canary_restart) to start over" % (version, state.get("stages"), stages))
        done = _passed_weights(state)
        failed = [step for step in state.get("steps", []) if not step.get("accepted")]
        left = [] if failed else [w for w in stages if w not in done]
        return None, {"mode": "resume", "stages_left": left, "stages_done": done, "failed_step": failed[-1] if failed else None}
    if state and state.get("status") == PROMOTED and state.get("version") == version and not restart:
        return None, {"mode": "done", "stages_left": [], "stages_done": _passed_weights(state), "failed_step": None}
    if state and state.get("status") == RUNNING:  # restart asked for: the old run is abandoned
        state = dict(state, status=ABANDONED, finished=utcnow())
    return _new_state(version, stages, started_by, state), {
        "mode": "start", "stages_left": stages, "stages_done": [], "failed_step": None}


def in_stage(record, weight):
    """A copy of ``record`` whose evidence names its stage (``stage.weight``): the gate's reports show each stage's
    measurements from it."""
    evidence = record.get("evidence")
    if evidence is None:
        evidence = {}
    if not isinstance(evidence, dict):
        return record  # malformed: the gate names it as such
    return dict(record, evidence=dict(evidence, stage={"weight": weight}))


def step(state, weight, records, allow_unknown=False):
    """Record one stage: ``(new_state, records_for_the_gate, accepted)``.

    A stage is accepted when its blocking checks all passed; with ``allow_unknown`` also when the worst is only
    ``error`` (could not decide): those parts are then handed on as advisory, and the stage's record says so."""
    if not state or state.get("status") != RUNNING:
        raise CanaryStateError("path: no canary is running (begin one first)")
    if weight not in state.get("stages", []):
        raise CanaryStateError("weight: %r is not one of the recorded stages %s" % (weight, state.get("stages")))
    label = "stage %d %%" % weight
    record = rollup_record("canary.step", records, name="canary.step.%d" % weight, label=label,
                           evidence={"weight": weight, "version": state.get("version"), "stage": {"weight": weight}})
    handed = [in_stage(r, weight) for r in records if isinstance(r, dict) and "status" in r]
    accepted = record["status"] == PASS
    if record["status"] == ERROR and allow_unknown:
        accepted = True
        handed = [dict(r, blocking=False) if r["status"] == ERROR else r for r in handed]
        record = dict(record, blocking=False,
                      summary=record["summary"] + " (inconclusive, accepted because allow_unknown is set)")
    if record["status"] == SKIPPED:
        accepted = False
    entry = {"weight": weight, "status": record["status"], "accepted": accepted, "summary": record["summary"],
             "at": utcnow(), "parts": record["evidence"]["parts"]}
    steps = [s for s in state.get("steps", []) if s.get("weight") != weight] + [entry]
    return dict(state, steps=steps, updated=entry["at"]), handed + [record], accepted


def finish(state, outcome, problems=()):
    """End the run: ``(new_state, record)``; promoted is a pass, rolled back a fail naming the stage that
    stopped it (and any problem of the rollback itself)."""
    if not state:
        raise CanaryStateError("path: no canary state to finish")
    if outcome not in (PROMOTED, ROLLED_BACK):
        raise CanaryStateError("outcome: %r is not promoted or rolled_back" % (outcome,))
    steps = state.get("steps", [])
    evidence = {"version": state.get("version"), "stages": state.get("stages"),
                "steps": [dict((k, s.get(k)) for k in ("weight", "status", "accepted", "summary", "at")) for s in steps],
                "problems": list(problems)}
    version = state.get("version")
    if outcome == PROMOTED:
        if problems:
            record = make_record("canary.promoted", ERROR, "canary %s passed every stage but the promotion did not "
                                 "complete: %s" % (version, "; ".join(problems)), evidence)
        else:
            record = make_record("canary.promoted", PASS, "canary %s promoted after stages %s"
                                 % (version, ", ".join("%d %%" % s["weight"] for s in steps)), evidence)
    else:
        stopped = [s for s in steps if not s.get("accepted")]
        why = stopped[-1]["summary"] if stopped else "stopped before its stages passed"
        summary = "canary %s rolled back: %s" % (version, why)
        if problems:
            summary += "; the rollback itself: %s" % "; ".join(problems)
        record = make_record("canary.rolled_back", FAIL, summary, evidence)
    return dict(state, status=outcome, finished=utcnow(), updated=utcnow()), record


def done_record(state):
    """The record of a version promoted earlier: nothing is left to do, and the gate sees it passed."""
    return make_record("canary.promoted", PASS, "canary %s was already promoted (%s); nothing to do"
                       % (state.get("version"), state.get("finished")),
                       {"version": state.get("version"), "finished": state.get("finished")})


def _begin(params, state, check_mode):
    new_state, plan = begin(state, params["version"], params["stages"], params["restart"], params["started_by"])
    records = []
    if plan["mode"] == "done":
        records.append(done_record(state))
    elif check_mode:
        records.append(make_record("canary.step", SKIPPED, "planned in check mode: %s %s at stages %s, nothing changed"
                                   % (plan["mode"], params["version"], plan["stages_left"]), dict(plan),
                                   skip_reason=SKIP_CHECK_MODE))
    return new_state, dict(plan, records=records)


def _step(params, state):
    parts = params["records"] + records_of_results(params["results"], "canary.step")
    new_state, records, accepted = step(state, params["weight"], parts, params["allow_unknown"])
    return new_state, {"records": records, "accepted": accepted}


def _finish(params, state):
    new_state, record = finish(state, params["outcome"], params["problems"])
    return new_state, {"records": [record]}


def act(params, state, check_mode):
    """The module's action (begin, step or finish) on the loaded state: ``(new_state, result)``, the state
    not yet written; in check mode a begin that would act is a record skipped for check mode."""
    if params["action"] == "begin":
        return _begin(params, state, check_mode)
    if params["action"] == "step":
        return _step(params, state)
    return _finish(params, state)

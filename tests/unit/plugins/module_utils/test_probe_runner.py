"""The probe runner's judgement of latency and of a service that does not answer, on a client whose answers a test
scripts (latencies included), so nothing here depends on how fast this machine is."""
from __future__ import annotations

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.cleanwithsnapshot.release.plugins.module_utils import auth_matrix, probes
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_errors import TransportError
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.http_transport import Attempt, Outcome, Response
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.redaction import Secrets
from ansible_collections.cleanwithsnapshot.release.plugins.module_utils.waiter import Deadline, RetryPolicy

BASE = "http://127.0.0.1:18000"


class FakeModule:
    check_mode = False

    def __init__(self, **params):
        self.params = dict(mode="check", consecutive_successes=1, interval=1.0, deadline=60.0, latency_samples=3,
                           base_url=BASE, headers={}, max_latency_ms=None, follow_redirects="safe", timeout=10.0,
                           connect_timeout=None, validate_certs=True, ca_path=None, client_cert=None, client_key=None,
                           use_proxy=True, retries=3, backoff=0.5, backoff_max=10.0)
        self.params.update(params)
        self.secrets = Secrets()


class ScriptedClient:
    """Answers from a script: a latency in ms (a 200 answer with the body), or a TransportError (no answer)."""

    def __init__(self, script, body=b'{"status": "ok"}'):
        self.script = list(script)
        self.body = body
        self.sent = []
        self.halted = None
        self.sleeps = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)

    def halt(self, reason):
        self.halted = TransportError("not_run", reason)

    def request(self, spec, policy=None, deadline=None, budget=None):
        outcome = Outcome()
        if self.halted is not None:
            outcome.error = self.halted
            return outcome
        self.sent.append(spec.url)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, TransportError):
            outcome.error = item
            outcome.gave_up = "retries exhausted"
            outcome.attempts.append(Attempt(1, 0.0, 5000.0, error="%s: %s" % (item.kind, item.message)))
            return outcome
        outcome.response = Response(200, "OK", [("Content-Type", "application/json")], self.body, spec.url, float(item))
        outcome.attempts.append(Attempt(1, 0.0, float(item), status=200))
        return outcome


def runner_for(client, probe, **params):
    module = FakeModule(**params)
    plans = probes.plan_probes(dict(module.params, probes=[probe]))
    runner = probes.Runner(module, client, Deadline(60), RetryPolicy())
    runner.prepare(plans)
    return runner, plans[0]


def custom(**extra):
    probe = {"name": "estimate", "criterion": "smoke.estimate", "path": "/v1/estimate", "max_latency_ms": 5000}
    probe.update(extra)
    return probe


def test_a_slow_first_answer_is_measured_again_and_passes_when_the_next_is_within_budget():
    client = ScriptedClient([10106.6, 85.0])
    runner, plan = runner_for(client, custom())
    record = runner.run(plan)[0]
    assert record["status"] == "pass"
    assert record["evidence"]["latency_samples_ms"] == [10106.6, 85.0]
    assert "re-measured: 1 of 2 answers over the 5000 ms budget" in record["summary"]
    assert len(client.sent) == 2 and runner.requests_sent == 2


def test_a_budget_fails_only_when_every_one_of_the_samples_is_over_it():
    client = ScriptedClient([9000.0, 8000.0, 7000.0, 50.0])
    runner, plan = runner_for(client, custom())
    record = runner.run(plan)[0]
    assert record["status"] == "fail"
    assert record["evidence"]["latency_samples_ms"] == [9000.0, 8000.0, 7000.0]
    assert "every one of 3 answers was over the 5000 ms budget (9000, 8000, 7000 ms)" in record["summary"]
    assert len(client.sent) == 3  # latency_samples bounds the re-measures


@pytest.mark.parametrize("samples, sent", [(1, 1), (2, 2)])
def test_latency_samples_bounds_the_answers_judged(samples, sent):
    client = ScriptedClient([9000.0])
    runner, plan = runner_for(client, custom(), latency_samples=samples)
    assert runner.run(plan)[0]["status"] == "fail"
    assert len(client.sent) == sent


def test_a_write_is_never_sent_again_to_re_measure_its_latency():
    client = ScriptedClient([9000.0, 50.0])
    runner, plan = runner_for(client, custom(method="POST", write=True))
    record = runner.run(plan)[0]
    assert record["status"] == "fail" and len(client.sent) == 1
    assert "latency_samples_ms" not in record["evidence"]


def test_an_answer_failing_more_than_its_latency_is_not_measured_again():
    client = ScriptedClient([9000.0, 50.0], body=b'{"status": "down"}')
    runner, plan = runner_for(client, {"kind": "healthz", "max_latency_ms": 5000})
    record = runner.run(plan)[0]
    assert record["status"] == "fail" and len(client.sent) == 1


@pytest.mark.parametrize("kind, message, status, words", [
    ("refused", "connection refused", "fail", "the service refuses connections"),
    ("timeout", "timed out waiting for the answer (the connection was accepted)", "fail",
     "the service accepted the connection but sent no answer within 5.0 s: it is hung"),
    ("connect_timeout", "timed out connecting (no connection within 5 s)", "error", "cannot decide"),
    ("dns", "name resolution failed: Name or service not known", "error", "cannot decide"),
    ("tls", "certificate verify failed", "error", "cannot decide"),
])
def test_liveness_without_an_answer_names_whose_failure_it_is(kind, message, status, words):
    client = ScriptedClient([TransportError(kind, message)])
    runner, plan = runner_for(client, {"kind": "healthz"})
    record = runner.run(plan)[0]
    assert (record["status"], record["criterion"]) == (status, "health.liveness")
    assert words in record["summary"]
    halted = runner.halt_if_unreachable([plan])
    assert halted is (kind != "tls")  # a TLS problem says nothing about the service being there


def test_a_probe_that_is_not_a_precondition_cannot_decide_without_an_answer():
    client = ScriptedClient([TransportError("refused", "connection refused")])
    runner, plan = runner_for(client, custom())
    record = runner.run(plan)[0]
    assert record["status"] == "error" and "cannot decide" in record["summary"]


def test_after_a_halt_the_other_probes_are_recorded_not_run_and_not_sent():
    client = ScriptedClient([TransportError("refused", "connection refused")])
    module = FakeModule()
    plans = probes.plan_probes(dict(module.params, probes=[{"kind": "healthz"}, {"kind": "readyz"}, custom()]))
    runner = probes.Runner(module, client, Deadline(60), RetryPolicy())
    runner.prepare(plans)
    runner.run(plans[0])
    assert runner.halt_if_unreachable([plans[0]])
    records = runner.run(plans[1]) + runner.run(plans[2])
    assert [r["name"] for r in records] == ["readyz", "readyz:migrations", "readyz:jobs", "estimate"]
    for record in records:
        assert record["status"] == "error" and record["evidence"]["sent"] is False
        assert ("not sent: the precondition probe 'healthz' (health.liveness) got no answer (the service refuses "
                "connections), so nothing else was sent; cannot decide") in record["summary"]
    assert client.sent == [BASE + "/healthz"]


@pytest.mark.parametrize("probe, message", [
    ({"kind": "healthz", "after_blocking": True}, "precondition and after_blocking cannot both be true"),
    ({"kind": "healthz", "body_from": [{"probe": "estimate", "key": "x"}]}, "a precondition is sent first and alone"),
    ({"kind": "healthz", "retries": -1}, "probes[0] (name 'healthz').retries must be 0 or more"),
])
def test_bad_ordering_options_name_the_option(probe, message):
    with pytest.raises(probes.ProbeInputError) as error:
        probes.plan_probes(dict(FakeModule().params, probes=[probe, custom()]))
    assert message in str(error.value)


def test_a_probe_cannot_take_its_body_from_an_advisory_probe_sent_after_it():
    source = custom(name="openapi", criterion="smoke.docs", path="/openapi.json", blocking=False)
    taker = custom(json_body={}, body_from=[{"probe": "openapi", "key": "schema"}])
    with pytest.raises(probes.ProbeInputError) as error:
        probes.plan_probes(dict(FakeModule().params, probes=[source, taker]))
    assert "probes[1] (name 'estimate').body_from: its source 'openapi' is sent after_blocking" in str(error.value)
    source["after_blocking"] = False
    assert [plan["phase"] for plan in probes.plan_probes(dict(FakeModule().params, probes=[source, taker]))] == [1, 1]


def test_the_phases_by_default():
    plans = probes.plan_probes(dict(FakeModule().params, probes=[
        {"kind": "healthz"}, {"kind": "readyz"}, custom(name="docs", criterion="smoke.docs", blocking=False),
        custom(name="heavy", after_blocking=True), {"kind": "healthz", "name": "live2", "precondition": False}]))
    assert [(plan["name"], plan["phase"]) for plan in plans] == [
        ("healthz", probes.PHASE_PRECONDITION), ("readyz", probes.PHASE_MAIN), ("docs", probes.PHASE_AFTER_BLOCKING),
        ("heavy", probes.PHASE_AFTER_BLOCKING), ("live2", probes.PHASE_MAIN)]


def test_the_admin_matrix_never_waits_past_the_call_deadline():
    params = dict(ArgumentSpecValidator(auth_matrix.matrix_argument_spec()).validate({
        "roles": {"admin": {"username": "ops", "password": "matrix-pw-123456"}},
        "endpoints": [{"name": "profile", "criterion": "auth.roles", "path": "/v1/admin/profile",
                       "expect": {"admin": 200}}],
        "deadline": 120}).validated_parameters)
    params.update(base_url=BASE, timeout=10.0, connect_timeout=None, retries=0, backoff=0.5, backoff_max=10.0,
                  validate_certs=True, ca_path=None, client_cert=None, client_key=None, use_proxy=True)
    matrix = auth_matrix.MatrixRun(params, False, Secrets())
    seen = []

    class DeadlineClient(ScriptedClient):
        def request(self, spec, policy=None, deadline=None, budget=None):
            seen.append(deadline.seconds)
            return super(DeadlineClient, self).request(spec, policy, deadline, budget)

    clock = [100.0]
    call_deadline = Deadline(30, clock=lambda: clock[0])
    clock[0] += 12.0  # the probes before it took 12 of the call's 30 s
    matrix.run(DeadlineClient([5.0]), budget=None, deadline=call_deadline)
    assert seen and set(seen) == {18.0}
    seen.clear()
    matrix.run(DeadlineClient([5.0]), budget=None)  # alone (basic_auth_endpoint): its own deadline
    assert set(seen) == {120.0}


def test_a_wait_mode_poll_cut_off_by_the_deadline_does_not_hide_the_last_real_answer():
    refused = TransportError("refused", "connection refused")
    cut = TransportError("deadline", "the deadline passed before the request was sent")

    class CuttingClient(ScriptedClient):
        def request(self, spec, policy=None, deadline=None, budget=None):
            outcome = super(CuttingClient, self).request(spec, policy, deadline, budget)
            if outcome.error is cut:
                outcome.attempts = [Attempt(1, 0.0, 0.0, error="deadline: %s" % cut.message)]
            return outcome

    client = CuttingClient([refused, refused, cut])
    runner, plan = runner_for(client, {"kind": "healthz"}, mode="wait", interval=0.0)
    record = runner.run(plan)[0]
    assert record["status"] == "fail" and "the service refuses connections" in record["summary"]
    assert record["evidence"]["evaluations"] == 2

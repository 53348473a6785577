"""verify.yml with inputs the user got wrong, run for real with ansible-playbook against a reference stack: it stops
before any request reaches the service (counted by the service's own request counters), names the variable the user
set, suggests the criterion meant, and still leaves a NO-GO-INCONCLUSIVE report saying why."""
from __future__ import annotations

import json
import os
import urllib.request

import pytest

from playbook_run import playbook_runner
from refstack import started_stack


pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(pg_server):
    with started_stack(pg_server, "cws_vi_%d" % os.getpid(), layout=True) as ref:
        yield ref


@pytest.fixture()
def verify(stack, tmp_path):
    runner = playbook_runner(stack, tmp_path)

    def run(overrides):
        extra = tmp_path / "overrides.json"
        extra.write_text(json.dumps(overrides))
        proc = runner.run("verify.yml", "-e", "@%s" % extra)
        return proc, runner.required_report(proc)

    yield run


def requests_served(stack):
    """Every request the service has seen: answered ones (http_requests_total, /metrics included, each scrape counted
    in the next) and those its rate limiter refused (http_429_total)."""
    request = urllib.request.Request(stack.base_url + "/metrics",
                                     headers={"Authorization": "Bearer %s" % stack.facts()["metrics_token"]})
    with urllib.request.urlopen(request, timeout=30) as answer:
        text = answer.read().decode("utf-8")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(("http_requests_total{", "http_429_total{")))


MISSPELT = "release_waivers[0].criterion: backup.freshnes is not a known criterion (did you mean backup.freshness?)"


@pytest.mark.parametrize("overrides, words, gate_words", [
    ({"release_waivers": [{"criterion": "backup.freshnes", "reason": "the backup host moves", "expires": "2099-01-01"}]},
     MISSPELT, MISSPELT),
    # Once the gate's own argument check failed on it ("option 'gate_waivers'") and no report was written.
    ({"release_waivers": "backup.freshness"},
     "release_waivers: must be a list of waivers ({criterion, reason, expires}), got str",
     "release_waivers: must be a list, got str"),
    ({"release_advisory_criteria": ["config.strip"]},
     "release_advisory_criteria[0]: config.strip is not a known criterion (did you mean config.stripe",
     "release_advisory_criteria: config.strip is not a known criterion (did you mean config.stripe"),
    ({"release_api_base_url": ""},
     "release_api_base_url: not set (an http:// or https:// URL, like https://api.example.com)", None),
    ({"verify_rls_tables": []},
     "verify_rls_tables or verify_rls_table_pattern: none is set; one of them must be", None),
], ids=["misspelt-waiver", "waivers-not-a-list", "misspelt-advisory", "no-api-url", "no-rls-tables"])
def test_a_wrong_input_stops_verify_before_any_request_naming_the_variable(verify, stack, overrides, words, gate_words):
    before = requests_served(stack)
    proc, report = verify(overrides)
    after = requests_served(stack)
    assert proc.returncode != 0
    # The only request between the two counts is the first count's own scrape.
    assert after - before == 1, (after - before, proc.stdout[-3000:])
    assert words in proc.stdout, proc.stdout[-3000:]
    assert report["verdict"] == "NO-GO-INCONCLUSIVE"
    assert report["counts"]["records"]["total"] == 0  # no check ran, the database ones neither
    assert any(words in error for error in report["input_errors"]), report["input_errors"]
    if gate_words:
        # The gate itself refuses it too (it also runs without verify: release.yml's preflight gate), as the user set it.
        assert any(error.startswith(gate_words) for error in report["input_errors"]), report["input_errors"]

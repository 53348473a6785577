"""The fault matrix: one injected fault per case over a healthy reference stack, run through verify.yml (or
release.yml for configuration and host faults) with ansible-playbook, for real. Each case must end in NO-GO, the
play must fail, the report must be written and published (set_stats), and the criteria the fault breaks must be
named - in gonogo.json and in the failure message - with no false alarm on criteria the fault does not touch.

The cases are data (matrix_cases.py). CI runs the representative subset (one case per category);
scripts/fault_matrix.sh runs all of them."""
from __future__ import annotations

import os
import shutil
import subprocess

import psycopg2
import pytest

from matrix_cases import CASES, DB_CRITERIA, HTTP_CRITERIA, tls_front
from matrix_harness import NO_GO, MatrixContext
from pgcluster import PgCluster
from refstack import start_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _params():
    for fault in CASES:
        marks = [] if fault.ci else [pytest.mark.matrix_full]
        yield pytest.param(fault, id=fault.id, marks=marks)


def assert_no_go(run, criteria, also=(), verdict=None):
    detail = run.tail()
    assert run.rc != 0, "a NO-GO must fail the play\n" + detail
    assert run.report is not None, "the reports must be written on NO-GO\n" + detail
    assert run.verdict in NO_GO, detail
    if verdict:
        assert run.verdict == verdict, detail
    named = run.not_passing()
    missing = set(criteria) - named
    assert not missing, "criteria the fault breaks but the gate did not name: %s\n%s" % (sorted(missing), detail)
    false_alarms = named - set(criteria) - set(also)
    assert not false_alarms, "criteria named that the fault does not touch: %s\n%s" % (sorted(false_alarms), detail)
    for criterion in criteria:
        assert criterion in run.stdout, "the failure message must name %s\n%s" % (criterion, detail)
    # Published for AWX even on NO-GO: the custom stats and the play output both carry the verdict.
    assert run.custom_stats.get("gonogo_verdict") == run.verdict, run.custom_stats
    assert "gonogo_verdict: %s" % run.verdict in run.stdout


@pytest.mark.parametrize("fault", list(_params()))
def test_fault_is_no_go_naming_its_criterion(matrix, fault):
    fault.inject(matrix)
    run = matrix.run(fault.playbook, *fault.extra_vars)
    assert_no_go(run, fault.criteria, fault.also, fault.verdict)


@pytest.mark.matrix_full
def test_tls_front_end_healthy_is_go(matrix):
    """The control of the TLS cases: through a correct TLS front end (CA-signed certificate, HSTS, redirect)
    the release is GO, so each TLS case's NO-GO comes from its fault alone."""
    tls_front()(matrix)
    run = matrix.run("verify.yml")
    assert run.rc == 0 and run.verdict == "GO", run.tail()
    outcomes = run.outcomes()
    assert outcomes["tls.certificate"] == "pass" and outcomes["tls.redirect"] == "pass"
    assert outcomes["headers.security"] == "pass"


@pytest.mark.matrix_full
def test_database_cluster_stopped(tmp_path, matrix_tls_factory):
    """The whole PostgreSQL cluster stops under a running service (a stack on a cluster of its own)."""
    cluster = PgCluster()
    stack = None
    try:
        stack = start_stack(cluster.start(), "cws_mxdown_%d" % os.getpid(), layout=True)
        ctx = MatrixContext(stack, tmp_path, matrix_tls_factory)
        subprocess.run(cluster._cmd([os.path.join(cluster.bindir, "pg_ctl"), "-D", cluster.datadir,  # pylint: disable=protected-access
                                     "-m", "fast", "-w", "stop"]), check=True, capture_output=True, timeout=60)
        run = ctx.run("verify.yml")
        assert_no_go(run, ("migrations.at_head", "rls.isolation", "health.readiness"), also=DB_CRITERIA + HTTP_CRITERIA)
        assert {"migrations.at_head", "rls.isolation"} <= set(run.report["inconclusive"]), run.report["inconclusive"]
    finally:
        if stack is not None:
            try:
                stack.stop()
            except psycopg2.Error:
                shutil.rmtree(stack.state_dir, ignore_errors=True)
        cluster.stop()
